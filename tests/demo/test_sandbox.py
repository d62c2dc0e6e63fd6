import json

from demo.sandbox import ONBOARDING_STEPS, finish_onboarding, onboarding_done


def _store(config_dir, done):
    path = config_dir / ".storage" / "onboarding"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"version": 4, "key": "onboarding", "data": {"done": done}}))
    return path


def test_the_remaining_steps_are_marked_done(tmp_path):
    path = _store(tmp_path, ["user"])
    assert not onboarding_done(tmp_path)
    assert finish_onboarding(tmp_path)
    assert onboarding_done(tmp_path)
    data = json.loads(path.read_text())
    assert data["data"]["done"] == list(ONBOARDING_STEPS)
    assert data["version"] == 4
    assert not finish_onboarding(tmp_path)  # nothing left to do


def test_nothing_is_done_before_the_owner_exists(tmp_path):
    assert not finish_onboarding(tmp_path)  # no file yet
    _store(tmp_path, [])
    assert not finish_onboarding(tmp_path)
    assert not onboarding_done(tmp_path)
