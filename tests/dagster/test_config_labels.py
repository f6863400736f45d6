"""Labels in the Dagster run configuration (the Launchpad) are names, never paths: a bad one is
refused when the configuration is read, naming the field (songexplorer_core.labels)."""

import pytest
from pydantic import ValidationError

from songexplorer_dagster.defs.model.config import TrainingConfig
from songexplorer_dagster.defs.review.config import ActivationsConfig, MissesConfig, MistakesConfig, SummariesConfig

FIELDS = [(TrainingConfig, "labels_to_use"), (MissesConfig, "detected_labels"), (MistakesConfig, "labels"),
          (ActivationsConfig, "labels"), (SummariesConfig, "labels"), (SummariesConfig, "pulse_labels")]


@pytest.mark.parametrize("config, field", FIELDS)
@pytest.mark.parametrize("bad", ["../../groundtruth/X", "a,b", "a\nb", ""])
def test_a_label_that_is_not_a_name_is_refused_naming_the_field(config, field, bad):
    assert getattr(config(**{field: ["mel-pulse", "ambient"]}), field) == ["mel-pulse", "ambient"]
    with pytest.raises(ValidationError, match=rf"{field}: label .* a label is a name"):
        config(**{field: ["mel-pulse", bad]})


def test_a_training_run_with_a_bad_label_fails_before_training(tmp_path):
    import dagster as dg

    @dg.asset
    def uses(config: TrainingConfig) -> None:
        raise AssertionError("the step must not start")

    result = dg.materialize([uses], run_config={"ops": {"uses": {"config": {"labels_to_use": ["a/b"]}}}},
                            raise_on_error=False)
    assert not result.success
    failure = next(event for event in result.all_events if event.is_step_failure)
    assert "labels_to_use: label 'a/b' holds a path separator" in str(failure.event_specific_data.error)
