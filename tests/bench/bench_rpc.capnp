@0xfc8a7c4e7cf157f5;
# Floor 2 of the benchmark (tests/bench/bench_rpc.cc): the bare cost of a Cap'n Proto call on
# the transport sbrun and sbagent use, with no splitbrain code. Bench-only: never part of the
# product protocol (schema/splitbrain.capnp).

interface Ping {
  ping @0 (value :UInt64) -> (value :UInt64);
  # The smallest useful round trip: one number there and back.
  fetch @1 (count :UInt32) -> (data :Data);
  # `count` bytes back, the shape of Node.read (a fresh Data in the results, filled by memcpy).
  push @2 (data :Data) -> (count :UInt32);
  # `data` there, its size back: the shape of Node.write.
}
