"""Agents for the isolation tests (module-level, so that a child process can import them)."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import datetime
import enum
import os
import random
import subprocess
import sys
import threading
import time

from pytest_agentops import tool


def hostile(task, env):
    """Trial 1 exits the process, trial 2 allocates 8 GiB at once, trial 3 busy-loops; the others answer with
    their process id."""
    index = int(env.trial_id.split("-")[1])
    if index == 1:
        os._exit(3)
    if index == 2:
        return len(bytearray(8 * 2**30))
    if index == 3:
        while True:
            pass
    return str(os.getpid())


def spawner(task, env):
    """Starts a long-running process of its own, writes both process ids to the file named by the task, and
    then (task ending in ``hang``) hangs, or returns at once."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    path = task.split()[0]
    with open(path + ".tmp", "w") as f:
        f.write(f"{os.getpid()} {child.pid}")
    os.replace(path + ".tmp", path)
    if task.endswith("hang"):
        threading.Event().wait()  # real time: only a kill ends it
    return "spawned"


@tool
async def slow_lookup(world, order_id: int) -> int:
    """An async tool that takes 5 s of virtual time (awaited in the parent, on the trial's loop)."""
    await asyncio.sleep(5)
    return order_id


async def sleeper(task, env):
    """Sleeps 1 s of virtual time in its own process, calls the slow tool, then tells the time it sees; trial 1
    fails where it says."""
    await asyncio.sleep(1)
    await env.tools["slow_lookup"](7)
    if env.trial_id == "trial-1":
        raise ValueError("no such order")
    return f"{time.monotonic():.6f}"


async def reads_a_slow_server(task, env):
    """Asks a server on loopback (its port in the task), which answers 0.6 s later: real I/O, which virtual time
    follows, in a child process as in the test process."""
    reader, writer = await asyncio.open_connection("127.0.0.1", int(task))
    writer.write(b"ping")
    await writer.drain()
    answer = await reader.read(4)
    writer.close()
    return f"{answer.decode()} {time.monotonic():.1f}"


def polls_a_server(task, env):
    """Ten GETs to a server on loopback (its port in the task): what came back, in order."""
    import httpx

    seen = []
    with httpx.Client(timeout=5) as client:
        for i in range(10):
            try:
                seen.append(str(client.get(f"http://127.0.0.1:{task}/now?i={i}").status_code))
            except httpx.TransportError as exc:
                seen.append(type(exc).__name__)
    return " ".join(seen)


# -- agents that go for the test process through the channel to it ------------------------------------------------
class Orders:
    def __init__(self):
        self.refunded = []


@tool(side_effect=True)
def refund_order(world, order_id: int) -> str:
    """Refund an order."""
    world.refunded.append(order_id)
    return "refunded"


#: run in the test process, it finds the trial's world and makes the refund the agent never made
FAKE_REFUND = """
import gc, os
for o in gc.get_objects():
    if type(o).__name__ == "Orders" and hasattr(o, "refunded"):
        o.refunded.append(42)
open(os.environ["AGENTOPS_RAN_IN"], "w").write(str(os.getpid()))
"""


class Smuggled:
    """An object whose unpickling runs code: where the test process unpickles it, in the test process."""

    def __reduce__(self):
        return (exec, (FAKE_REFUND,))


def smuggles(task, env):
    """Sends the test process a ``Smuggled`` object: as its output, an exception's attribute or a tool's argument."""
    if task == "output":
        return Smuggled()
    if task == "exception":
        exc = RuntimeError("boom")
        exc.payload = Smuggled()
        raise exc
    env.tools["refund_order"](Smuggled())
    return "called"


def _fake_refund(*_):
    exec(FAKE_REFUND)


class Forged:
    """An object of the agent's own class whose rebuilding runs its code (``task`` picks which method)."""

    def __setstate__(self, state):
        _fake_refund()

    def __del__(self):  # (only where it is dropped after being rebuilt: the child's own copy drops quietly)
        if getattr(self, "armed", False):
            _fake_refund()


class ForgedNew:
    def __new__(cls, *args):
        _fake_refund()
        return super().__new__(cls)

    def __getnewargs__(self):
        return (1,)


class ForgedInit:
    def __init__(self, *args):
        _fake_refund()

    def __reduce__(self):
        return (ForgedInit, (1,))


class ForgedKey:
    def __hash__(self):
        _fake_refund()
        return 1


class ForgedError(Exception):
    def __setattr__(self, name, value):
        if os.getpid() == int(os.environ.get("AGENTOPS_TEST_PID", "0")):  # (in the test process only)
            _fake_refund()
        super().__setattr__(name, value)


class ForgedSetstateIsBuiltin(list):
    """``__setstate__`` a function of the installation's (``list.append``): it still runs in the test process."""
    __setstate__ = list.append


def forges(task, env):
    """Returns (or raises) an object of one of the ``Forged`` classes: their methods would fill the world in."""
    if task == "setstate":
        return Forged()
    if task == "del":
        forged = Forged.__new__(Forged)
        forged.armed = True
        return [forged]
    if task == "new":
        return ForgedNew.__new__(ForgedNew)
    if task == "init":
        return object.__new__(ForgedInit)
    if task == "key":
        return {object.__new__(ForgedKey): 1}
    if task == "builtin":
        forged = ForgedSetstateIsBuiltin([1])
        forged.tag = 1  # (a state to set: ``__setstate__`` is called)
        return forged
    error = ForgedError("gave up")
    error.note = 1
    raise error


@dataclasses.dataclass
class Reply:
    text: str
    n: int


@dataclasses.dataclass(frozen=True)
class FrozenReply:
    text: str
    n: int


@dataclasses.dataclass(frozen=True, slots=True)
class SlottedReply:
    text: str
    n: int


Pair = collections.namedtuple("Pair", "n text")


class Colour(enum.Enum):
    RED = "red"


class Level(enum.IntEnum):
    HIGH = 3


class Perm(enum.Flag):
    R = 1
    W = 2


def floods(task, env):
    """Tells the test process a message of 1 TiB follows, then streams zeros at it (using ~1 MiB itself)."""
    import socket
    import struct

    channel = socket.socket(fileno=os.dup(int(sys.argv[1])))
    channel.sendall(struct.pack("!Q", 1 << 40))
    block = b"\0" * 2**20
    for _ in range(64):
        channel.sendall(block)
    os._exit(0)


def sends_empty_sets(task, env):
    """Sends the test process one message of ``task`` empty sets (one byte each on the wire, 216 in pytest)."""
    import socket
    import struct

    data = b"\x80\x04" + b"\x8f" * int(task) + b"."  # (PROTO 4, EMPTY_SET..., STOP)
    channel = socket.socket(fileno=os.dup(int(sys.argv[1])))
    channel.sendall(struct.pack("!Q", len(data)) + data)
    os._exit(0)


def its_memory_limit(task, env):
    """The address-space limit the agent's process runs under: (soft, hard)."""
    import resource

    return resource.getrlimit(resource.RLIMIT_AS)


def exits(task, env):
    sys.exit(0)


def _aimed(task):
    """(what, pid) of a task ``"WHAT PID"``: the test passes its own pid (the agent's parent is its keeper)."""
    what, pid = task.split()
    return what, int(pid)


def signals_the_test_process(task, env):
    """Sends SIGCONT (harmless: a refusal that failed leaves pytest running) to the test process, its process
    group or every process (``-1``); catches the refusal and claims success."""
    import signal

    kind, parent = _aimed(task)
    target = {"pid": parent, "group": -os.getpgid(parent), "everyone": -1, "keeper": os.getppid()}[kind]
    with contextlib.suppress(PermissionError):
        os.kill(target, signal.SIGCONT)
    return "done"


def leaves_processes_behind(task, env):
    """Starts ``sleep`` in a session of its own, directly or through a shell that exits at once (the sleep is
    then an orphan), and (x86-64) as its parent's child, ``clone(CLONE_PARENT)``, in a session of its own too;
    writes their pids to the file named by the task; ends by returning, by ``os._exit``, by ``SIGKILL`` or by a
    segfault."""
    import ctypes
    import platform
    import signal

    path, how = task.split()
    direct = subprocess.Popen(["sleep", "300"], start_new_session=True)
    shell = subprocess.run(["sh", "-c", "setsid sleep 300 > /dev/null 2>&1 & echo $!"], capture_output=True,
                           text=True, check=True)
    pids = [direct.pid, int(shell.stdout)]
    if platform.machine() == "x86_64":
        clone_parent, sigchld, sys_clone = 0x8000, 17, 56
        libc = ctypes.CDLL(None, use_errno=True)
        libc.syscall.restype = ctypes.c_long
        pid = libc.syscall(sys_clone, clone_parent | sigchld, 0, 0, 0, 0)
        if pid == 0:  # (the sibling: becomes a sleep in a session of its own at once)
            os.execvp("setsid", ["setsid", "sleep", "300"])
        pids.append(pid)
    with open(path + ".tmp", "w") as f:
        f.write(" ".join(map(str, pids)))
    os.replace(path + ".tmp", path)
    if how == "exit":
        os._exit(0)
    if how == "sigkill":
        os.kill(os.getpid(), signal.SIGKILL)
    if how == "segfault":
        ctypes.string_at(0)
    return "spawned"


def signals_past_os_kill(task, env):
    """Signals the test process (SIGCONT: harmless) through ``posix.kill``, with a numpy integer pid, and through
    ``signal.pidfd_send_signal`` to an open ``/proc/PID`` directory."""
    import posix
    import signal

    import numpy as np

    task, parent = _aimed(task)
    with contextlib.suppress(PermissionError):
        if task == "posix":
            posix.kill(parent, signal.SIGCONT)
        elif task == "numpy":
            os.kill(np.int64(parent), signal.SIGCONT)
        else:
            signal.pidfd_send_signal(os.open(f"/proc/{parent}", os.O_RDONLY), signal.SIGCONT)
    return "done"


def signals_past_every_name(task, env):
    """Sends SIGURG (ignored by default: harmless) to the test process past every name the child refuses:
    ``ctypes``' ``kill`` (also from a thread of its own), a fresh copy of ``posix`` (``BuiltinImporter``) and a
    shell's ``kill``; and opens the test process's memory for writing. Returns what each attempt gave."""
    import ctypes
    import importlib.machinery
    import importlib.util
    import signal
    import threading

    _, parent = _aimed(task)
    libc = ctypes.CDLL(None, use_errno=True)
    found = {}

    def by_ctypes(key):
        found[key] = "sent" if libc.kill(parent, signal.SIGURG) == 0 else os.strerror(ctypes.get_errno())

    by_ctypes("ctypes")
    thread = threading.Thread(target=by_ctypes, args=("thread",))
    thread.start()
    thread.join()
    spec = importlib.machinery.BuiltinImporter.find_spec("posix")
    fresh = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fresh)
    try:
        fresh.kill(parent, signal.SIGURG)
        found["posix"] = "sent"
    except OSError as exc:
        found["posix"] = exc.strerror
    shell = subprocess.run(["sh", "-c", f"kill -URG {parent}"], capture_output=True, text=True)
    found["shell"] = "sent" if shell.returncode == 0 else shell.stderr.strip()
    try:
        with open(f"/proc/{parent}/mem", "r+b"):
            found["memory"] = "opened"
    except OSError as exc:
        found["memory"] = exc.strerror
    return found


def reaches_past_signals(task, env):
    """Acts on the test process without a signal, each time leaving it as it was had the call gone through: sets
    its core-file limit to what it is (``prlimit64``), its nice value and CPU affinity to theirs, writes its
    ``oom_score_adj`` back; and tries ``PTRACE_TRACEME``, ``TIOCSTI`` on its standard output, a file in the
    Python installation, and what an agent may do: write, rename across directories and remove files under the
    directory named by the task. Returns what each gave."""
    import ctypes
    import errno
    import resource
    import struct

    _, parent, scratch = task.split()
    parent = int(parent)
    libc = ctypes.CDLL(None, use_errno=True)
    found = {}

    def errno_of(rc):
        return "done" if rc == 0 else errno.errorcode[ctypes.get_errno()]

    soft, hard = resource.prlimit(parent, resource.RLIMIT_CORE)
    limits = struct.pack("=QQ", soft % 2**64, hard % 2**64)
    found["prlimit"] = errno_of(libc.prlimit64(parent, resource.RLIMIT_CORE, limits, None))
    try:
        os.setpriority(os.PRIO_PROCESS, parent, os.getpriority(os.PRIO_PROCESS, parent))
        found["setpriority"] = "done"
    except OSError as exc:
        found["setpriority"] = errno.errorcode[exc.errno]
    try:
        os.sched_setaffinity(parent, os.sched_getaffinity(parent))
        found["affinity"] = "done"
    except OSError as exc:
        found["affinity"] = errno.errorcode[exc.errno]
    try:
        with open(f"/proc/{parent}/oom_score_adj") as f:
            current = f.read()
        with open(f"/proc/{parent}/oom_score_adj", "w") as f:
            f.write(current)
        found["oom_score_adj"] = "done"
    except OSError as exc:
        found["oom_score_adj"] = errno.errorcode[exc.errno]
    found["traceme"] = errno_of(libc.ptrace(0, 0, 0, 0))
    found["tiocsti"] = errno_of(libc.ioctl(1, 0x5412, ctypes.c_char_p(b"x")))
    group = f"/sys/fs/cgroup/agentops-fence-probe-{os.getpid()}"  # (pytest moved into it could be killed there)
    try:
        os.mkdir(group)
        os.rmdir(group)
        found["cgroup"] = "done"
    except OSError as exc:
        found["cgroup"] = errno.errorcode[exc.errno]
    first, second = os.path.join(scratch, "a"), os.path.join(scratch, "b")
    os.makedirs(first)
    os.makedirs(second)
    with open(os.path.join(first, "out.txt"), "w") as f:
        f.write("kept")
    os.replace(os.path.join(first, "out.txt"), os.path.join(second, "out.txt"))
    os.rmdir(first)
    with open(os.path.join(second, "out.txt")) as f:
        found["files"] = f.read()
    return " ".join(f"{key}={value}" for key, value in found.items())  # (short: a record keeps 200 characters)


def traces_over_and_over(task, env):
    """Sends one 8 MiB trace event again and again (its own memory stays flat: pytest kept every copy)."""
    blob = "x" * (8 * 2**20)
    for _ in range(int(task)):
        env.trace.add("note", "blob", "ok", blob=blob)
    return "sent"


def square(x):
    return x * x


def pools(task, env):
    """Maps ``square`` over a pool of two worker processes started as the task says (``fork``, ``forkserver``)."""
    import multiprocessing

    with multiprocessing.get_context(task).Pool(2) as pool:
        return pool.map(square, range(4))


def says_it_is_unfenced(task, env):
    """Tells the test process what a child that could not fence itself in tells it (``child_main``)."""
    env._rpc.call("fence", task)
    return "told"


async def hands_the_clock_to_a_thread(task, env):
    """``time.sleep`` and ``time.time`` handed to a worker thread as they are (``to_thread``, ``run_in_executor``)."""
    import asyncio
    import time

    await asyncio.to_thread(time.sleep, 3)
    return await asyncio.get_running_loop().run_in_executor(None, time.time)


def plants_code(task, env):
    """Writes a ``sitecustomize.py`` and a ``platform.py`` into each directory the task names (one of the test
    process's ``sys.path``, the working directory): run by a later child, each notes in ``ran-<name>`` whether
    that child was fenced in yet (``NoNewPrivs``)."""
    for directory in task.split(";"):
        for name in ("sitecustomize", "platform"):
            with open(os.path.join(directory, f"{name}.py"), "w") as f:
                f.write("import os\n"
                        "with open('/proc/self/status') as status:\n"
                        "    fenced = [line.split()[1] for line in status if line.startswith('NoNewPrivs')]\n"
                        f"with open({os.path.join(directory, 'ran-' + name)!r}, 'a') as out:\n"
                        "    out.write(' '.join(fenced) + '\\n')\n")
    return "planted"


def reaches_past_the_fence_as_root(task, env):
    """What root's capabilities reached past the fence (a review), each tried so that it changes nothing if it
    goes through: a BPF map made (a program sending pytest signals needs the same), a CPU-wide perf event opened
    (one raising ``SIGTRAP`` in whatever runs on that CPU), a fanotify group (permission events stall pytest's
    ``open``), ``SCHED_FIFO`` for itself (a busy loop starving pytest; set back at once). Returns each call's
    errno name (or ``done``) and the capability sets left, from ``/proc/self/status``."""
    import ctypes
    import errno
    import struct

    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    found = {}

    def errno_of(rc):
        if rc >= 0:
            os.close(rc) if rc > 0 else None
            return "done"
        return errno.errorcode[ctypes.get_errno()]

    bpf_map = struct.pack("=IIII", 2, 4, 4, 1) + bytes(56)  # BPF_MAP_TYPE_ARRAY, key 4, value 4, 1 entry
    found["bpf"] = errno_of(libc.syscall(321, 0, bpf_map, len(bpf_map)))  # bpf(BPF_MAP_CREATE)
    perf = struct.pack("=IIQ", 1, 128, 0) + bytes(112)  # PERF_TYPE_SOFTWARE, size 128, PERF_COUNT_SW_CPU_CLOCK
    found["perf"] = errno_of(libc.syscall(298, perf, -1, 0, -1, 0))  # pid -1 on cpu 0: every process there
    found["fanotify"] = errno_of(libc.syscall(300, 0x04, 0))  # fanotify_init(FAN_CLASS_CONTENT)
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
        os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
        found["fifo"] = "done"
    except OSError as exc:
        found["fifo"] = errno.errorcode[exc.errno]
    other = subprocess.Popen(["sleep", "30"], user=65534)  # (its own process as another user: still its to end)
    try:
        other.kill()
        found["other_user"] = "done"
    except OSError as exc:
        found["other_user"] = errno.errorcode[exc.errno]
    finally:
        with contextlib.suppress(OSError):
            os.kill(other.pid, 9)
        other.wait()
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(("CapEff", "CapBnd", "CapInh", "CapAmb")):
                name, value = line.split()
                found[name.rstrip(":")] = value
    return " ".join(f"{key}={value}" for key, value in found.items())


_HOPPER = """
import os, sys, time
beat, until = sys.argv[1], time.time() + float(sys.argv[2])
for _ in range(3):  # (four chains)
    if os.fork() == 0:
        break
os.setsid()  # (a session of its own)
import ctypes
syscall = ctypes.CDLL(None).syscall
hops = 0
while hops % 4096 or time.time() < until:  # (bounded: were it to escape, not for ever)
    hops += 1
    if hops % 256 == 0:  # (a heartbeat: its pid changes too fast to be found by listing /proc)
        part = f"{beat}.{os.getpid()}"  # (written whole, then renamed: a hop killed mid-write leaves no empty file)
        with open(part, "w") as f:
            f.write(str(hops))
        os.replace(part, beat)
    if syscall(57):  # (a raw fork, x86-64: a new pid every few microseconds; a list of pids read is stale)
        syscall(231, 0)  # (exit_group: the parent is gone at once)
"""


def hops_pids(task, env):
    """Starts a process that forks and exits as fast as it can, in a new session each time (a review: it outran
    the clean-up's rounds of reading ``/proc`` and killing what it found), then returns or (task ending in
    ``hang``) hangs. The hopper writes its count of hops to the file the task names, and ends itself after 20 s."""
    beat, ending = task.split()
    subprocess.Popen([sys.executable, "-c", _HOPPER, beat, "20"],
                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    import select

    for _ in range(500):  # (until it hops: real time, a trial's sleep is virtual)
        if os.path.exists(beat):
            break
        select.select([], [], [], 0.01)
    if ending == "hang":
        threading.Event().wait()
    return "left"


def refused_then_undone(task, env):
    """Signals the test process, catches the refusal, and clears what the child module kept of it."""
    import signal

    from pytest_agentops.harness.child import child_side

    with contextlib.suppress(PermissionError):
        os.kill(int(task), signal.SIGCONT)
    for name in dir(child_side):  # (every list the module holds: the first refusal was one)
        if isinstance(getattr(child_side, name), list):
            getattr(child_side, name).clear()
    return "undone"


def leaves_a_thread_running(task, env):
    """Starts a thread that is not a daemon and runs 60 s, then returns at once."""
    threading.Thread(target=lambda: __import__("select").select([], [], [], 60)).start()
    return "returned"


_LEFT_OPEN = []


def leaves_a_file_open(task, env):
    """Writes to a file it leaves open (held by the module), and schedules more work in a thread pool that it
    does not wait for; returns at once."""
    import concurrent.futures

    f = open(task, "w")  # noqa: SIM115 (left open: the process's exit flushes it)
    f.write("written ")
    _LEFT_OPEN.append(f)
    pool = concurrent.futures.ThreadPoolExecutor(1)
    pool.submit(lambda: (__import__("select").select([], [], [], 0.2), f.write("pooled"), f.flush()))
    _LEFT_OPEN.append(pool)
    return "returned"


class _Log:
    """A class attribute holds a file (every class is in a reference cycle: only the collector frees it)."""

    file = None


class _HoldsItsThread:
    """Holds a file and a thread of its own bound method: a reference cycle, as many objects are."""

    def __init__(self, path):
        import threading

        self.file = open(path, "w")  # noqa: SIM115 (left open: the process's exit closes it)
        self.thread = threading.Thread(target=self.run)

    def run(self):
        pass


def leaves_files_in_cycles(task, env):
    """Writes to files it leaves open, held through reference cycles (a class attribute, an object holding a thread
    of its own method), without flushing; says whether what its process had loaded before it ran is frozen."""
    import gc
    import os

    _Log.file = open(os.path.join(task, "class.txt"), "w")  # noqa: SIM115
    _Log.file.write("class attribute")
    holder = _HoldsItsThread(os.path.join(task, "cycle.txt"))
    holder.file.write("cycle")
    _LEFT_OPEN.append(holder)
    return "frozen" if gc.get_freeze_count() > 0 else "not frozen"


@tool
def quote(item: str) -> float:
    """A price that moves: the tool draws from ``random`` (a real API's answer the harness cannot plan)."""
    return round(10 + random.random(), 6)


def draws_beside_its_tool(task, env):
    """Draws from ``random`` before and after a tool that draws too (the draws of both, as the output)."""
    mine = round(random.random(), 6)
    price = env.tools["quote"]("book")
    return mine, price, round(random.random(), 6)


#: Modules an isolated agent's process loaded for its harness before and no longer loads unless the agent does
HARNESS_ONCE_LOADED = ("freezegun", "dateutil", "importlib.abc", "pytest_agentops.llm")


def reports_the_modules_its_harness_loaded(task, env):
    """Which of ``HARNESS_ONCE_LOADED`` its process has loaded, and what ``env.llm`` is (None without a fake model)."""
    return tuple(name in sys.modules for name in HARNESS_ONCE_LOADED), type(env.llm).__name__


def freezes_time_after_importing_freezegun(task, env):
    """Imports freezegun inside its trial (the first import in its process, isolated), then freezes time with a real
    asyncio loop that sleeps and with a ticking clock: what freezegun means by real time must be real, not the trial's
    clock (which stands still: both hung). Says whether freezegun's captures are the trial's stand-ins."""
    import asyncio

    import freezegun
    import freezegun.api

    with freezegun.freeze_time("2001-02-03", real_asyncio=True):
        asyncio.run(asyncio.sleep(0.05))
        year = datetime.date.today().year
    with freezegun.freeze_time("2001-02-03", tick=True):
        start = time.time()
        while time.time() - start < 0.01:
            pass
    held = sorted(name for name in ("real_time", "real_monotonic", "real_date", "real_datetime")
                  if getattr(freezegun.api, name).__module__.startswith("pytest_agentops"))  # (a stand-in's)
    return year, held


def imports_numpy_and_draws(task, env):
    """Says whether numpy was loaded before it imported numpy itself (in its trial), then draws from numpy's
    global functions, reseeded without a seed, a name bound from ``numpy.random`` and an unseeded ``default_rng``."""
    loaded = "numpy" in sys.modules
    import numpy as np
    from numpy.random import randint

    first = float(np.random.rand())
    np.random.seed()  # no seed: the trial's next reseed, not the OS's entropy
    drawn = (first, int(randint(0, 10**9)), int(np.random.default_rng().integers(10**9)),
             int(np.random.mtrand._rand.randint(10**9)))
    return loaded, drawn


class _NumpyPastTheWatch:
    """An import hook that finds numpy's modules itself (as instrumentation hooks do), ahead of the harness's."""

    def find_spec(self, name, path, target=None):
        import importlib.machinery

        return importlib.machinery.PathFinder.find_spec(name, path, target) if name.startswith("numpy") else None


def imports_numpy_past_the_watch(task, env):
    """``imports_numpy_and_draws`` with an import hook of its own put first on ``sys.meta_path``: in its trial
    (``task="in trial"``), or as its module would at its import, before the trial (any other task)."""
    if task == "in trial":
        sys.meta_path.insert(0, _NumpyPastTheWatch())
    return imports_numpy_and_draws(task, env)


async def draws_beside_its_tool_async(task, env):
    mine = round(random.random(), 6)
    price = env.tools["quote"]("book")
    return mine, price, round(random.random(), 6)


def drawing_policy(messages, tools):
    """A fake model's policy that draws from ``random``: its number is its answer."""
    return f"{random.random():.6f}"


def draws_beside_its_model(task, env):
    """Draws from ``random`` around one call of the fake model, whose policy draws too."""
    import openai

    mine = round(random.random(), 6)
    client = openai.OpenAI(base_url=env.llm.base_url, api_key=env.llm.api_key, max_retries=0)
    said = client.chat.completions.create(model=env.llm.model, messages=[{"role": "user", "content": task}])
    return mine, said.choices[0].message.content, round(random.random(), 6)


def traces_a_lot(task, env):
    """Sends ``task`` trace events of 48 KiB each, then one of 1 KiB (within what a trial keeps)."""
    blob = "x" * 49152
    for _ in range(int(task)):
        env.trace.add("note", "blob", "ok", blob=blob)
    env.trace.add("note", "small", "ok", blob="y" * 1024)
    return "sent"


def calls_for_ever(task, env):
    """A runaway loop that swallows everything: calls ``lookup`` and traces a note of its own each turn, until
    its harness calls have raised ``task`` times (the trial ended: each call raises again)."""
    raised = turns = 0
    while raised < int(task):
        try:
            env.tools["lookup"](turns)
            env.trace.add("note", "turn", "ok", turn=turns)
            turns += 1
        except BaseException:
            raised += 1
    return f"{turns} turns"


def saves_for_ever(task, env):
    """A runaway loop of checkpoints that swallows everything: ``task`` saves, counted as they go or raise."""
    ok = raised = 0
    for i in range(int(task)):
        try:
            env.state.save("k", i)
            ok += 1
        except BaseException:
            raised += 1
    return f"ok={ok} raised={raised}"


class SendsRawFrame:
    """An agent that writes ``payload`` to its channel to the test process as a message of its own, then waits."""

    def __init__(self, payload: bytes):
        self.payload = payload

    def __call__(self, task, env):
        import gc
        import socket

        from pytest_agentops.harness.child import protocol

        (channel,) = [o for o in gc.get_objects() if isinstance(o, socket.socket) and o.fileno() >= 0][:1]
        channel.sendall(protocol._HEADER.pack(len(self.payload)) + self.payload)
        time.sleep(30)
        return "sent"


@dataclasses.dataclass(frozen=True)
class DiceRecord:
    """What ``DiceLayer`` drew in one trial, from its campaign part, ``attach``, each ``before_tool`` and ``record``."""

    campaign: float
    attached: float
    calls: tuple[float, ...]
    recorded: float

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


class _DiceTrial:
    def __init__(self, campaign: float):
        self.campaign = campaign
        self.attached = round(random.random(), 6)
        self.calls: list[float] = []

    def before_tool(self, call) -> None:
        self.calls.append(round(random.random(), 6))

    def settle(self, exc):
        random.random()  # (a draw as the trial ends: it must not move the record's)
        return exc

    def record(self) -> DiceRecord:
        return DiceRecord(self.campaign, self.attached, tuple(self.calls), round(random.random(), 6))


class _DiceCampaign:
    def __init__(self):
        self.campaign = round(random.random(), 6)

    def attach(self, trial):
        from pytest_agentops.harness.layer import LayerTrial

        return type("DiceTrial", (_DiceTrial, LayerTrial), {})(self.campaign)


class DiceLayer:
    """A scenario's own layer whose code draws from ``random`` everywhere it runs."""

    name = "dice"

    def for_campaign(self, scenario, run):
        return _DiceCampaign()

    def attach(self, trial):  # (a layer's face; ``for_campaign`` gives the part the trials use)
        raise AssertionError("for_campaign's part attaches the trials")


TRACED: list[int] = []  # the events ``traces_for_ever`` added in this process, one entry each


def traces_for_ever(task, env):
    """A runaway loop of the agent's own trace events alone (no tool call, no model call)."""
    turns = 0
    while True:
        env.trace.add("note", "turn", "ok", turn=turns)
        TRACED.append(turns)
        turns += 1


def says_its_pid(task, env):
    """The process the agent ran in."""
    return f"pid{os.getpid()}"
