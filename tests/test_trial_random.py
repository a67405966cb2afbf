"""The stdlib ``random`` inside trials: seeded by the trial, the same at any concurrency and on replay."""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
import sys
import zlib
from ast import literal_eval
from random import choice as bound_choice  # a name bound at import, swept like ``from time import time``

import pytest

from pytest_agentops import Faults, Scenario, replay_trial, run_campaign


def sync_agent(task, env):
    draws = [round(random.random(), 12), random.randint(1, 10**9), bound_choice("abcdefghij")]
    items = list(range(10))
    random.shuffle(items)
    return repr((draws, items))


async def async_agent(task, env):
    first = random.random()
    await asyncio.sleep(random.uniform(0, 3))  # virtual: other trials' draws interleave with this one's
    return repr((round(first, 12), random.getrandbits(40), bound_choice("abcdefghij")))


def _outputs(agent, concurrency: int) -> list[str]:
    result = run_campaign(Scenario(name="draws", agent=agent, trials=30, seed=11, concurrency=concurrency,
                                   faults=Faults.none(), early_stop=False))
    return [r.output for r in result.records]


def test_draws_depend_on_the_trial_only_not_on_concurrency_or_interleaving():
    for agent in (sync_agent, async_agent):
        alone, together = _outputs(agent, 1), _outputs(agent, 10)
        assert alone == together
        assert len(set(alone)) == len(alone)  # and differ from trial to trial


def test_a_replayed_trial_draws_the_same():
    scenario = Scenario(name="draws", agent=async_agent, trials=30, seed=11, faults=Faults.none(), concurrency=10,
                        early_stop=False)
    campaign = run_campaign(scenario)
    assert replay_trial(scenario, 17).output == campaign.records[17].output


def test_outside_trials_the_process_generator_is_untouched_and_the_names_are_restored():
    originals = (random.random, random.shuffle, bound_choice)
    random.seed(1234)
    expected = [random.random() for _ in range(3)]
    random.seed(1234)
    run_campaign(Scenario(name="draws", agent=sync_agent, trials=5, seed=11, faults=Faults.none()))
    assert [random.random() for _ in range(3)] == expected  # the trials drew from their own generators
    assert (random.random, random.shuffle, globals()["bound_choice"]) == originals


def test_reseeding_inside_a_trial_reseeds_only_that_trial():
    def agent(task, env):
        random.seed(5)
        return repr(random.random())

    random.seed(99)
    before = random.getstate()
    outputs = _outputs(agent, 4)
    assert len(set(outputs)) == 1 and outputs[0] == repr(random.Random(5).random())
    assert random.getstate() == before


def test_numpys_global_random_state_as_libraries_fetch_it_is_the_trials():
    """scikit-learn's ``check_random_state(None)`` (and scipy's) return ``np.random.mtrand._rand`` when called:
    it drew from the process-wide ``RandomState``, differently in every run."""
    import numpy as np

    def agent(task, env):
        state = np.random.mtrand._rand  # (looked up as a library does, at the draw)
        return f"{state.randint(0, 10**9)} {np.random.randint(0, 10**9)}"

    scenario = Scenario(name="global-state", agent=agent, trials=6, seed=3, faults=Faults.none(), early_stop=False)
    first, second = run_campaign(scenario), run_campaign(scenario, concurrency=4)
    outputs = [r.output for r in first.records]
    assert outputs == [r.output for r in second.records] and len(set(outputs)) == 6
    assert replay_trial(scenario, 4).output == outputs[4]
    assert type(np.random.mtrand._rand) is np.random.RandomState  # (outside campaigns: the real one)


def test_a_job_an_async_agent_hands_the_loops_default_executor_draws_and_reads_time_as_its_trial():
    """``loop.run_in_executor(None, fn)`` ran ``fn`` outside the trial's context (``asyncio.to_thread`` copies
    it): its ``random.random()`` and ``time.time()`` were the process's, different in every run."""
    import time

    def job():
        return f"{random.random():.9f} {time.time():.3f}"

    async def agent(task, env):
        return await asyncio.get_running_loop().run_in_executor(None, job)

    scenario = Scenario(name="executor", agent=agent, trials=5, seed=2, faults=Faults.none(), early_stop=False)
    first, second = run_campaign(scenario), run_campaign(scenario, concurrency=5)
    outputs = [r.output for r in first.records]
    assert outputs == [r.output for r in second.records] and len(set(outputs)) == 5
    assert replay_trial(scenario, 3).output == outputs[3]


def _busy_draws(name: str) -> tuple[str, list[int]]:
    """A thread job that works between its draws (so that jobs running at once interleave as their threads run)."""
    import hashlib

    import numpy as np

    digest, draws = name.encode(), []
    for _ in range(3):
        for _ in range(2000):
            digest = hashlib.sha256(digest).digest()
        draws += [random.randint(0, 10**6), int(np.random.randint(0, 10**6))]
    return name, draws


def test_thread_jobs_running_at_once_each_draw_from_a_generator_of_their_own():
    """Found by an outside review: jobs of one trial run at once in threads (``asyncio.to_thread``,
    ``run_in_executor``, anyio's worker threads) drew from the trial's one generator in the order the operating
    system ran their threads: the outputs, the outcomes and the report differed run to run at the same seed and
    concurrency, and a printed replay command gave another outcome. Each job now has a generator of its own,
    seeded by the trial and the job's place among the trial's jobs."""
    import anyio.to_thread

    async def agent(task, env):
        loop = asyncio.get_running_loop()
        jobs = [asyncio.to_thread(_busy_draws, name) for name in ("ann", "bob", "cy")]
        jobs.append(loop.run_in_executor(None, _busy_draws, "dee"))
        jobs += [anyio.to_thread.run_sync(_busy_draws, name) for name in ("eve", "fay")]
        done = await asyncio.gather(*jobs)
        return repr(([draws[0] for _, draws in done], zlib.crc32(repr(done).encode())))  # (an output is shown cut)

    scenario = Scenario(name="jobs", agent=agent, trials=12, seed=3, faults=Faults.none(), early_stop=False)
    outputs = [r.output for r in run_campaign(scenario).records]
    assert [r.output for r in run_campaign(scenario).records] == outputs
    assert [r.output for r in run_campaign(scenario, concurrency=8).records] == outputs
    assert replay_trial(scenario, 7).output == outputs[7]
    assert len(set(eval(outputs[0])[0])) == 6 and len(set(outputs)) == 12  # (each job its own stream)


def test_tools_called_in_thread_jobs_running_at_once_each_draw_from_a_generator_of_their_own(monkeypatch):
    """An outside review: with the tools' own stream (a tool's draws apart from the agent's), tools called in
    thread jobs running at once (a job held its turn past ``PATIENCE_S``: a slow API) drew from the trial's one
    tool stream in the order their threads ran: 4 runs of one trial gave 4 outputs. A tool called in a thread job
    draws from that job's own tool stream."""
    import threading

    from pytest_agentops import tool
    from pytest_agentops.vtime import lanes

    monkeypatch.setattr(lanes, "PATIENCE_S", 0.05)

    @tool
    def quote(item: str) -> str:
        """A price that moves, from a slow API (its jobs end up running at once)."""
        threading.Event().wait(0.1)
        return f"{zlib.crc32(repr([random.random() for _ in range(100_000)]).encode()):08x}"

    async def agent(task, env):
        return repr(await asyncio.gather(*(asyncio.to_thread(env.tools["quote"], name) for name in ("a", "b", "c"))))

    scenario = Scenario(name="tool-jobs", agent=agent, tools=[quote], trials=2, seed=3, faults=Faults.none(),
                        early_stop=False)
    outputs = [r.output for r in run_campaign(scenario).records]
    assert [r.output for r in run_campaign(scenario).records] == outputs
    assert replay_trial(scenario, 1).output == outputs[1]
    assert len(set(eval(outputs[0]))) == 3 and len(set(outputs)) == 2


@pytest.mark.leaves_process_state("children", reason="multiprocessing's resource tracker, which a spawned pool "
                                 "starts, lives as long as the process")
def test_a_process_pools_job_is_handed_over_as_asyncio_hands_it():
    """A job for a process pool is pickled: run in a copy of the context, it could not be ("cannot pickle
    '_contextvars.Context' object"), and every trial was an error."""
    import concurrent.futures
    import multiprocessing

    async def agent(task, env):
        context = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(1, mp_context=context) as pool:
            return str(await asyncio.get_running_loop().run_in_executor(pool, pow, 2, 10))

    result = run_campaign(Scenario(name="pool", agent=agent, trials=1, seed=1, faults=Faults.none()))
    assert [(r.outcome, r.output) for r in result.records] == [("completed", "1024")]


def test_set_bit_generator_in_a_trial_is_the_trials_and_leaves_numpys_global_alone():
    """``np.random.set_bit_generator`` writes into ``mtrand._rand``, the trial-dispatching stand-in while
    campaigns run: it changed nothing a trial or anyone else drew from."""
    import numpy as np

    before = type(np.random.get_bit_generator())

    def agent(task, env):
        np.random.set_bit_generator(np.random.PCG64(5))
        return f"{np.random.random():.9f} {type(np.random.get_bit_generator()).__name__}"

    result = run_campaign(Scenario(name="bitgen", agent=agent, trials=2, seed=1, faults=Faults.none(),
                                   early_stop=False))
    first = np.random.RandomState(np.random.PCG64(5)).random()
    assert [r.output for r in result.records] == [f"{first:.9f} PCG64"] * 2
    assert type(np.random.get_bit_generator()) is before

    def wrong(task, env):  # (not a bit generator: numpy refuses it; a reseed from the OS would not replay)
        np.random.set_bit_generator(None)

    (record,) = run_campaign(Scenario(name="bitgen-none", agent=wrong, trials=1, seed=1, faults=Faults.none())).records
    assert record.outcome == "error" and record.reason.startswith("AttributeError: ")


_NUMPY_LATE = """
import sys
{first}
import pytest_agentops.harness.child.child_side  # (what an isolated agent's process imports)
from pytest_agentops.process import trial_random
from pytest_agentops.process.time_patch import time_patch
watching = [repr(f) for f in sys.meta_path if "numpy.random" in repr(f)]
loaded = "numpy" in sys.modules
with time_patch():
    import numpy as np
    inside = (type(np.random.rand).__name__, type(np.random.mtrand.rand).__name__,
              type(np.random.mtrand._rand).__name__)
    draws = [trial_random.drawing_from(trial_random.TrialRandom(5), np.random.rand) for _ in range(2)]
    seeded = trial_random.drawing_from(trial_random.TrialRandom(5), lambda: (np.random.seed(), np.random.rand())[1])
print(repr((loaded, watching, inside, type(np.random.rand).__name__, type(np.random.__loader__).__name__,
            [repr(f) for f in sys.meta_path if "numpy.random" in repr(f)], draws, seeded)))
"""


def test_numpys_stand_ins_arrive_with_numpy_random_even_while_they_are_installed():
    """An isolated agent's process does not load numpy for the trial's ``random`` machinery: numpy's stand-ins
    are registered when ``numpy.random`` is first imported, and put in at once (over ``numpy.random.mtrand``'s
    names too) when that happens while they are installed (inside a trial). The trial's numpy draws are then the
    same as in a process that imported numpy first; ``numpy.random`` keeps its own loader and the watch is gone."""
    def run(first: str) -> tuple:
        done = subprocess.run([sys.executable, "-c", _NUMPY_LATE.format(first=first)], capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return literal_eval(done.stdout)

    late, early = run(""), run("import numpy.random")
    loaded, watching, inside, after, loader, left, draws, seeded = late
    assert not loaded and len(watching) == 1 and left == []
    assert inside == ("function", "function", "_GlobalRandomState") and after == "method"  # in, then out again
    assert loader == "SourceFileLoader"
    assert draws[0] == draws[1] and seeded != draws[0]
    assert early[0] and early[1] == [] and early[2:] == late[2:]  # as in a process that loaded numpy first


_RERUNS_OUTER = '''
import json

pytest_plugins = ["pytester"]

INNER = """
import json, os
from pytest_agentops import Faults, Scenario, run_campaign

def agent(task, env):
    if not USES_NUMPY:
        return task
    import numpy.random as npr
    return float(npr.rand())

def test_it():
    r = run_campaign(Scenario(name="n", agent=agent, task="t", check=lambda w, o: True, faults=Faults.none(),
                              trials=2, seed=3))
    with open(os.environ["DRAWS_OUT"], "a") as f:
        f.write(json.dumps([rec.output for rec in r.records]) + "\\\\n")
"""


def test_reruns(pytester, monkeypatch):
    if OUTER_CAMPAIGN:
        from pytest_agentops import Faults, Scenario, run_campaign

        run_campaign(Scenario(name="plain", agent=lambda t, e: t, task="t", check=lambda w, o: True,
                              faults=Faults.none(), trials=2, seed=1))
    out = pytester.path / "draws.txt"
    monkeypatch.setenv("DRAWS_OUT", str(out))
    pytester.makepyfile(test_inner=f"USES_NUMPY = {OUTER_CAMPAIGN}\\n" + INNER)
    for _ in range(3):
        pytester.inline_run("-p", "no:cacheprovider").assertoutcome(passed=1)
    print("DRAWS", json.dumps(out.read_text().splitlines()))
'''


@pytest.mark.parametrize("outer_campaign", [False, True], ids=["numpy-first-in-a-run", "numpy-in-the-agent"])
def test_in_process_pytester_runs_of_campaigns_pass_and_draw_the_same_run_after_run(pytester, outer_campaign):
    """A review: with numpy imported where it was used, a session that had not imported numpy failed its second
    in-process ``pytester`` run (numpy imported again, "cannot load module more than once", in ``metrics``), and
    one whose first campaign loaded no ``numpy.random`` drew unseeded numbers in its later runs when the agent
    imported it. numpy is held once imported, and the engine brings numpy's stand-ins into pytest's process as
    before: every run passes and draws the same. (An agent that imports ``numpy.random`` afresh inside a trial,
    after a run dropped it, is refused ``os.putenv`` there, as before.)"""
    pytester.makepyfile(test_outer=f"OUTER_CAMPAIGN = {outer_campaign}\n" + _RERUNS_OUTER)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-s", "test_outer.py")
    result.assert_outcomes(passed=1)
    (line,) = [line for line in result.outlines if line.startswith("DRAWS ")]
    runs = json.loads(line[len("DRAWS "):])
    assert len(runs) == 3 and runs[0] == runs[1] == runs[2], runs
    draws = json.loads(runs[0])
    assert all(0 < float(x) < 1 for x in draws) if outer_campaign else draws == ["t", "t"]
