@0xb7e3c1f29a4d6e58;
# `sbrun --record FILE`: every answer the targets gave, for `sbrun --replay FILE` (docs/replay.md).
#
# The file is a stream of packed Cap'n Proto messages: one RecordingHeader, then one Event per
# message, in the order things happened. It is written as the run goes, so a run that ends badly
# still leaves a readable prefix. Calls are the wire's own (splitbrain.capnp): a call's params and
# results are stored as the protocol's structs, and a capability inside them (a Node, a Process,
# the Session) as the number the recording gave it (`Cap ids` below).

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("sb::rec");

const formatVersion :UInt32 = 1;
# Bumped on any incompatible change of this file; a replay refuses another version.

struct RecordingHeader {
  formatVersion @0 :UInt32;
  protocolVersion @1 :UInt32;   # splitbrain.capnp's protocolVersion of the recording sbrun
  sbrunVersion @2 :Text;
  argv @3 :List(Text);          # the program's command line, for the report
  targets @4 :List(Target);
  startedUnixMillis @5 :Int64;
}

struct Target {
  name @0 :Text;
  url @1 :Text;
}

# Cap ids: 0 is a null capability; every capability the targets hand out gets the next number
# (from 1), the first of each connection being its Agent (bootstrap). 0xffffffff: a capability
# the recording did not make (e.g. a broken one), which a replay cannot give back.

struct Event {
  union {
    connect @0 :Connect;
    call @1 :Call;
    random @2 :Random;
  }
}

struct Random {
  # A getrandom(2) of the program, which ran here: a replay gives the thread the same bytes, so
  # names made from them (mkstemp, Python's tempfile) and hash seeds come out the same.
  thread @0 :Text;              # the thread's lineage: "1" the program, "1.2" the second task
                                # it made (thread or process), and so on
  result @1 :Int64;
  bytes @2 :Data;
}

struct Connect {
  # A connection to a target was made: its Agent capability.
  target @0 :UInt16;            # index into RecordingHeader.targets
  generation @1 :UInt32;        # 1 for the first connection, one more per reconnect
  agent @2 :UInt32;             # cap id of its Agent
}

struct Call {
  # One call on a target's capability, written when it ended.
  seq @0 :UInt64;               # the order in which the calls were made (from 0)
  cap @1 :UInt32;               # the capability called
  interfaceId @2 :UInt64;
  methodId @3 :UInt16;
  params @4 :AnyPointer;        # the method's params struct
  paramCaps @5 :List(UInt32);   # the cap ids of `params`' capability table, in order
  micros @6 :UInt64;            # from the call to its answer
  union {
    results :group {
      value @7 :AnyPointer;     # the method's results struct
      caps @8 :List(UInt32);    # the cap ids given to its capability table
    }
    exception :group {
      type @9 :UInt8;           # kj::Exception::Type
      description @10 :Text;
    }
    cancelled @11 :Void;        # sbrun dropped the call before it answered (a signal, a timeout)
  }
}
