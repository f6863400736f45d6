"""TrainingConfig: the Launchpad's training settings start from a recipe; a field given replaces
the recipe's value, and the values used are what core's recipes say."""

import pytest
from pydantic import ValidationError

from songexplorer_core.recipes import default_recipe, tutorial_recipe
from songexplorer_dagster.defs.model.config import TrainingConfig

LABELS = ["mel-pulse", "mel-sine", "ambient"]


def test_empty_fields_take_the_recipe():
    assert TrainingConfig().train_config(LABELS) == default_recipe(LABELS)
    assert TrainingConfig(recipe="tutorial").train_config(LABELS) == tutorial_recipe(LABELS)


def test_a_field_given_replaces_the_recipes_value_and_nothing_else():
    config = TrainingConfig(nsteps=60, validate_period=20, dropout_rate=0.3, kernel_sizes="3x3,5",
                            batch_seed=-1).train_config(LABELS)
    recipe = default_recipe(LABELS)
    assert (config.nsteps, config.validate_period, config.batch_seed) == (60, 20, None)  # -1: random
    assert config.model.dropout_rate == 0.3 and config.model.kernel_sizes == ((3, 3), 5)
    assert config.learning_rate == recipe.learning_rate and config.parallelize == recipe.parallelize
    assert config.save_period == recipe.save_period and config.model.nfeatures == recipe.model.nfeatures


def test_an_unknown_recipe_is_refused_by_the_launchpad():
    with pytest.raises(ValidationError, match="'default' or 'tutorial'"):
        TrainingConfig(recipe="fast")
