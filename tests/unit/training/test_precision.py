"""``trainer.precision``: ``auto`` picks bf16-mixed only where the device runs it natively (the detection
predict uses, faked here for both answers), an explicit bf16 on a CPU without it warns, bad values are
one line naming the option, and a run logs which precision it chose and why."""

from __future__ import annotations

import logging

import pytest

from lfmri.errors import ConfigError
from lfmri.inference import network
from lfmri.training.precision import trainer_precision
from lfmri.training.run import train
from tests.helpers.config import compose
from tests.helpers.run import TINY


@pytest.fixture(params=[True, False], ids=["native-bf16", "no-native-bf16"])
def native(request, monkeypatch):
    """Fakes :func:`lfmri.inference.network.bf16_supported`, the one detection train and predict share."""
    seen = []

    def supported(device):
        seen.append(str(device))
        return request.param

    monkeypatch.setattr(network, "bf16_supported", supported)
    monkeypatch.setattr(network.torch.cuda, "is_available", lambda: False)
    return request.param, seen


def test_auto_follows_the_native_bf16_detection(native):
    answer, seen = native
    chosen, reason = trainer_precision("auto", "auto")
    assert chosen == ("bf16-mixed" if answer else "32-true") and set(seen) == {"cpu"}
    assert reason.startswith(f"trainer.precision=auto chose {chosen}: this CPU ")
    assert ("runs bfloat16 natively" in reason) is answer
    assert network.resolve_precision("auto", "cpu", {network.BF16_PARITY_KEY: 0.0}) == ("bf16" if answer else "fp32")


def test_an_explicit_bf16_is_kept_and_warned_about_only_without_native_support(native, caplog):
    answer, _ = native
    with caplog.at_level(logging.WARNING, logger="lfmri.training.precision"):
        assert trainer_precision("bf16-mixed", "cpu")[0] == "bf16-mixed"  # never refused
        assert trainer_precision("32-true", "cpu")[0] == "32-true"
        assert trainer_precision(32, "cpu")[0] == "32"  # YAML's int, Lightning's alias
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    if answer:
        assert warnings == []
    else:
        assert len(warnings) == 1 and "about 8x slower" in warnings[0] and "trainer.precision=bf16-mixed" in warnings[0]


def test_an_accelerator_without_a_known_bf16_trains_in_float32():
    assert trainer_precision("auto", "mps") == ("32-true", "trainer.precision=auto chose 32-true: "
                                                "this accelerator is not known to run bfloat16 natively")


def test_a_bad_precision_is_one_line_naming_the_option():
    with pytest.raises(ConfigError, match=r"^trainer.precision='bf17': expected auto or one of .*bf16-mixed.*32-true") as err:
        trainer_precision("bf17", "cpu")
    assert "\n" not in str(err.value)


def test_a_run_logs_the_precision_it_chose_and_trains_in_it(native, phantom_dir, tmp_path, caplog, monkeypatch):
    answer, _ = native
    chosen = []
    import lightning as L

    original = L.Trainer.__init__

    def record(self, *args, **kwargs):
        chosen.append(kwargs.get("precision"))
        if kwargs.get("precision") == "bf16-mixed":
            kwargs["precision"] = "32-true"  # this CPU may lack bf16: the choice is what is checked, not its speed
        original(self, *args, **kwargs)

    monkeypatch.setattr(L.Trainer, "__init__", record)
    cfg = compose(*TINY, f"data.pattern={phantom_dir}/*.nii.gz", "model=srcnn", "trainer.fast_dev_run=true",
                  "callbacks.progress_log=null", output_dir=f"{tmp_path}/run")
    with caplog.at_level(logging.INFO, logger="lfmri.training.run"):
        train(cfg)
    expected = "bf16-mixed" if answer else "32-true"
    assert chosen == [expected]
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("precision ")]
    assert lines == [f"precision {expected}: trainer.precision=auto chose {expected}: this CPU "
                     + ("runs bfloat16 natively (AVX512-BF16 or AMX)" if answer else "has no native bfloat16 (no AVX512-BF16 or AMX)")]


@pytest.mark.parametrize("answer, native", [("1", True), ("0", False)])
def test_the_environment_answers_the_bf16_detection_for_every_tool(monkeypatch, answer, native):
    """LFMRI_NATIVE_BF16 (the suite's run in the other precision, containers that hide CPU flags)."""
    from lfmri.inference.network import bf16_supported, resolve_precision

    monkeypatch.setenv("LFMRI_NATIVE_BF16", answer)
    assert bf16_supported("cpu") is native
    assert trainer_precision("auto", "cpu")[0] == ("bf16-mixed" if native else "32-true")
    if not native:  # the refusal of an explicit bf16 where bfloat16 is not native still holds
        with pytest.raises(ValueError, match="no native bfloat16"):
            resolve_precision("bf16", "cpu")
