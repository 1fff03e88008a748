"""pytest plugin: run a test's body on one of sbrun's targets.

Registered as a pytest11 entry point, so pytest loads it once the package is installed (or use
`pytest -p splitbrain.pytest_plugin`). Run the suite under sbrun:

    sbrun --mode local --target b=ssh://lab-b -- pytest -v tests/

(--mode local: pytest itself, its test files and unmarked tests stay on this machine.)

    @pytest.mark.remote("b")          # the test body runs in target b (its files, its uname)
    def test_board_name():
        assert platform.node() == "lab-b"

    @pytest.mark.remote               # no name: the first target sbrun was given
    def test_first_target(): ...

    def test_mixed(splitbrain):       # the fixture is the splitbrain module
        with splitbrain.remote("b"):
            ...

Only the test's call runs in the scope; fixtures set up and tear down where pytest itself runs
(this machine, unless sbrun's rules say otherwise). Outside sbrun, tests that need a target
(the marker or the fixture) are skipped with the reason; `--splitbrain-require` makes that an
error instead, for CI jobs that must not pass by skipping. `pytest -v` shows where each test
ran ("PASSED on b"), and the summary lists the tests per target.
"""

import pytest

import splitbrain

_PLACE = pytest.StashKey()   # item -> the target its body ran in


def pytest_addoption(parser):
    group = parser.getgroup("splitbrain")
    group.addoption("--splitbrain-require", action="store_true", default=False,
                    help="fail (rather than skip) tests that need a splitbrain target when "
                         "pytest does not run under sbrun")


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "remote(name=None): run the test body in sbrun's target NAME (default: the "
                   "first target); skipped outside sbrun")


def pytest_report_header(config):
    if splitbrain.available():
        return f"splitbrain: under sbrun (scope now: {splitbrain.current()})"
    return "splitbrain: not under sbrun; tests marked remote are " + (
        "errors" if config.getoption("splitbrain_require") else "skipped")


def _target_of(item):
    """The marker's target name (None: the first target), or False when there is no marker."""
    mark = item.get_closest_marker("remote")
    if mark is None:
        return False
    name = mark.kwargs.get("name", mark.args[0] if mark.args else None)
    if name is not None and not isinstance(name, str):
        raise pytest.UsageError(f"{item.nodeid}: @pytest.mark.remote takes a target name (str), "
                                f"not {name!r}")
    return name


def _need_sbrun(item):
    why = str(splitbrain._not_under_sbrun())
    hint = "; run pytest under sbrun: sbrun --mode local --target NAME=URL -- pytest ..."
    if item.config.getoption("splitbrain_require"):
        pytest.fail(why + hint, pytrace=False)
    pytest.skip(why + hint)


@pytest.fixture(name="splitbrain")
def splitbrain_fixture(request):
    """The splitbrain module, for scopes inside a test (skipped outside sbrun)."""
    if not splitbrain.available():
        _need_sbrun(request.node)
    return splitbrain


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    if (_target_of(item) is not False or "splitbrain" in getattr(item, "fixturenames", ())) \
            and not splitbrain.available():
        _need_sbrun(item)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    name = _target_of(item)
    if name is False:
        item.stash[_PLACE] = splitbrain.current() if splitbrain.available() else None
        yield
        return
    splitbrain.enter(name)   # UnknownTarget names the missing target: the test errors
    try:
        item.stash[_PLACE] = splitbrain.current()
        yield
    finally:
        splitbrain.exit()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    place = item.stash.get(_PLACE, None)
    if place is not None:
        report.user_properties.append(("splitbrain_scope", place))


def _place_of(report):
    for key, value in getattr(report, "user_properties", ()):
        if key == "splitbrain_scope":
            return value
    return None


def pytest_report_teststatus(report, config):
    place = _place_of(report)
    if report.when != "call" or place is None or place == "local":
        return None
    if report.passed:
        word = "PASSED"
    elif report.failed:
        word = "FAILED"
    else:
        return None
    return report.outcome, "." if report.passed else "F", f"{word} on {place}"


def pytest_terminal_summary(terminalreporter):
    places = {}
    for reports in terminalreporter.stats.values():
        for report in reports:
            if getattr(report, "when", None) == "call":
                place = _place_of(report)
                if place is not None:
                    places.setdefault(place, []).append(report.nodeid)
    if not places or set(places) == {"local"}:
        return
    terminalreporter.section("splitbrain: where test bodies ran")
    for place in sorted(places):
        terminalreporter.write_line(f"{place}: {len(places[place])} test(s)")
        for nodeid in places[place]:
            terminalreporter.write_line(f"  {nodeid}")
