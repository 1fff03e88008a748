"""python/splitbrain/ without sbrun: outside sbrun every call raises NotUnderSbrun; against a
fake control fd (a SOCK_SEQPACKET socketpair: one write, one record) the module writes exactly
the protocol's lines, and the errors sbrun answers with (simulated) become clear exceptions.

Run by meson test (suite unit) with PYTHONPATH pointing at python/; by hand:
    PYTHONPATH=python python3 tests/unit/splitbrain_py_test.py -v
"""

import errno
import os
import socket
import threading
import unittest
from unittest import mock

import splitbrain


class Outside(unittest.TestCase):
    def setUp(self):
        self.saved = os.environ.pop(splitbrain.ENV, None)

    def tearDown(self):
        os.environ.pop(splitbrain.ENV, None)
        if self.saved is not None:
            os.environ[splitbrain.ENV] = self.saved

    def assert_all_refused(self, why):
        self.assertFalse(splitbrain.available())
        calls = [splitbrain.current, splitbrain.enter, lambda: splitbrain.enter("b"),
                 lambda: splitbrain.enter("bad name"), splitbrain.enter_local, splitbrain.exit]
        for call in calls:
            with self.assertRaises(splitbrain.NotUnderSbrun) as cm:
                call()
            self.assertIsInstance(cm.exception, RuntimeError)
            self.assertEqual(str(cm.exception), f"splitbrain: not running under sbrun ({why})")
        for cm in (splitbrain.remote("b"), splitbrain.remote(), splitbrain.local()):
            with self.assertRaises(splitbrain.NotUnderSbrun):
                with cm:
                    self.fail("the block ran outside sbrun")

    def test_unset(self):
        self.assert_all_refused("SB_CONTROL_FD is not set")

    def test_malformed(self):
        for value in ("", "abc", "-1", "3x", " 3", "0x3", "٣"):
            with self.subTest(value=value):
                os.environ[splitbrain.ENV] = value
                self.assert_all_refused(f"SB_CONTROL_FD={value!r} is not a file descriptor number")
        for value in ("2147483648", "99999999999999999999"):
            with self.subTest(value=value):
                os.environ[splitbrain.ENV] = value
                self.assert_all_refused(f"SB_CONTROL_FD={value!r} is not an open file descriptor")

    def test_closed_fd(self):
        fd = os.dup(2)
        os.close(fd)
        os.environ[splitbrain.ENV] = str(fd)
        self.assert_all_refused(f"SB_CONTROL_FD='{fd}' is not an open file descriptor")


class FakeControlFd(unittest.TestCase):
    def setUp(self):
        self.saved = os.environ.get(splitbrain.ENV)
        self.ours, self.sbrun = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        os.environ[splitbrain.ENV] = str(self.ours.fileno())

    def tearDown(self):
        self.ours.close()
        self.sbrun.close()
        os.environ.pop(splitbrain.ENV, None)
        if self.saved is not None:
            os.environ[splitbrain.ENV] = self.saved

    def records(self):
        """Every record written so far."""
        out = []
        while True:
            try:
                out.append(self.sbrun.recv(512, socket.MSG_DONTWAIT).decode())
            except BlockingIOError:
                return out

    def test_available(self):
        self.assertTrue(splitbrain.available())

    def test_commands(self):
        splitbrain.enter("b")
        splitbrain.enter()
        splitbrain.enter_local()
        splitbrain.exit()
        splitbrain.enter("x" * splitbrain.NAME_MAX)
        self.assertEqual(self.records(), ["enter b\n", "enter\n", "local\n", "exit\n",
                                          "enter " + "x" * splitbrain.NAME_MAX + "\n"])

    def test_context_managers(self):
        with splitbrain.remote("b") as r:
            self.assertIn("remote('b')", repr(r))
            with splitbrain.local():
                pass
            with splitbrain.remote():
                pass
        with self.assertRaises(ZeroDivisionError):
            with splitbrain.remote("c"):
                1 / 0
        self.assertEqual(self.records(), ["enter b\n", "local\n", "exit\n", "enter\n", "exit\n",
                                          "exit\n", "enter c\n", "exit\n"])

    def test_bad_names_write_nothing(self):
        for name in ("", "a b", "b\nexit", "b\n", "\tb"):
            with self.subTest(name=name):
                with self.assertRaises(OSError) as cm:
                    splitbrain.enter(name)
                self.assertEqual(cm.exception.errno, errno.EINVAL)
                self.assertIn("invalid target name", str(cm.exception))
        with self.assertRaises(OSError) as cm:
            splitbrain.enter("x" * (splitbrain.NAME_MAX + 1))
        self.assertEqual(cm.exception.errno, errno.ENAMETOOLONG)
        with self.assertRaises(TypeError):
            splitbrain.enter(b"b")
        self.assertEqual(self.records(), [])

    def test_current(self):
        self.sbrun.send(b"b\n")
        self.assertEqual(splitbrain.current(), "b")
        self.sbrun.send(b"local\n")
        self.assertEqual(splitbrain.current(), "local")
        self.sbrun.send(b"no-newline")
        with self.assertRaises(OSError) as cm:
            splitbrain.current()
        self.assertEqual(cm.exception.errno, errno.EIO)
        self.assertEqual(self.records(), [])

    def test_current_blocks_until_answered(self):
        t = threading.Timer(0.1, lambda: self.sbrun.send(b"board-b\n"))
        t.start()
        try:
            self.assertEqual(splitbrain.current(), "board-b")
        finally:
            t.join()

    def failing_write(self, err):
        return mock.patch.object(splitbrain._os, "write",
                                 side_effect=OSError(err, os.strerror(err)))

    def test_unknown_target(self):
        with self.failing_write(errno.ENOENT):
            with self.assertRaises(splitbrain.UnknownTarget) as cm:
                splitbrain.enter("nope")
            with self.assertRaises(LookupError):
                with splitbrain.remote("nope"):
                    self.fail("the block ran")
            with self.assertRaises(OSError):
                splitbrain.enter("nope")
            with self.assertRaises(splitbrain.UnknownTarget) as cm2:
                splitbrain.enter()
        self.assertEqual(cm.exception.errno, errno.ENOENT)
        self.assertEqual(str(cm.exception), "[Errno 2] splitbrain: no target named 'nope'")
        self.assertIn("no target to enter", str(cm2.exception))
        self.assertNotIsInstance(cm.exception, FileNotFoundError)

    def test_exit_on_empty_stack(self):
        with self.failing_write(errno.EINVAL):
            with self.assertRaises(OSError) as cm:
                splitbrain.exit()
        self.assertEqual(cm.exception.errno, errno.EINVAL)
        self.assertIn("exit without a matching enter", str(cm.exception))

    def test_control_fd_closed(self):
        with self.failing_write(errno.EBADF):
            with self.assertRaises(splitbrain.NotUnderSbrun):
                splitbrain.enter("b")

    def test_other_errors_pass_through(self):
        with self.failing_write(errno.EIO):
            with self.assertRaises(OSError) as cm:
                splitbrain.enter_local()
        self.assertEqual(cm.exception.errno, errno.EIO)
        self.assertIn("'local' failed", str(cm.exception))

    def test_short_write(self):
        with mock.patch.object(splitbrain._os, "write", return_value=3):
            with self.assertRaises(OSError) as cm:
                splitbrain.exit()
        self.assertEqual(cm.exception.errno, errno.EIO)


if __name__ == "__main__":
    unittest.main()
