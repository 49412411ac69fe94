"""A demoted task whose emergency ends before it graduates still gets its early retrain.

Seen in the demo (issue 10): agreement fell (coaching, then an emergency and a
demotion); as the teacher answered, agreement rose back over the coaching
trigger, which ended the emergency before the episode had brought
``min_retrain_examples`` answers. The task then sat in reinforcement, teacher
on every request, waiting for a whole batch (1,250 examples there) before it
trained again. The episode now lasts until the task graduates again.
"""

from __future__ import annotations

from apprentice.engine import lifecycle as lc
from apprentice.vocabulary import Phase


def _demoted() -> lc.TaskState:
    p = lc.TaskParams(task="t", phase1_to_phase2=5, fine_tune_batch_size=100)
    s = lc.record_example(lc.initial(p), 5)
    s = lc.version_promoted(lc.training_finished(lc.training_started(s)), "v1")
    for i in range(60):
        s, _ = lc.observe(s, 1.0, index=i)
    assert s.phase is Phase.steady_state
    i = 60
    while s.phase is Phase.steady_state:
        s, _ = lc.observe(s, 0.2, index=i)
        i += 1
    assert s.emergency and s.episode_start == 5
    return s


def test_the_episode_outlives_the_emergency_until_graduation() -> None:
    s = _demoted()
    for i in range(40):  # agreement back over the coaching trigger, not enough to graduate
        s, _ = lc.observe(s, 0.8, index=200 + i)
    assert s.phase is Phase.reinforcement and not s.emergency and not s.coaching
    assert s.episode_start == 5
    assert not lc.training_due(s).due
    s = lc.record_example(s, s.params.min_retrain_examples)
    assert lc.training_due(s).reason == "demoted: 20 new examples"
    # One early run per episode: after it, the batch cadence.
    s = lc.training_finished(lc.training_started(s))
    assert s.remedial
    s = lc.record_example(s, s.params.min_retrain_examples)
    assert not lc.training_due(s).due
    for i in range(200):
        s, _ = lc.observe(s, 1.0, index=300 + i)
    assert s.phase is Phase.steady_state and s.episode_start is None and not s.remedial
