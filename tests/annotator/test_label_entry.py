"""The annotator's label boxes take names, never paths: a label typed into a box is checked by core
(``songexplorer_core.labels.check_label``) before any gesture can save it."""

import pytest

from songexplorer_annotator.app import AnnotatorApp
from songexplorer_core.annotation_session import SessionError

KEY = "demo-1.wav"


@pytest.fixture
def app(project):
    return AnnotatorApp(project, annotator="tester", query={"recording": KEY})


@pytest.mark.parametrize("typed", ["../../groundtruth/X", "a,b", "a\tb", "..", "a\\b"])
def test_a_label_that_is_not_a_name_is_refused_in_its_box(app, typed):
    box = app.labels.inputs[4]
    box.value_input = typed
    assert app.session.label == ""  # no label chosen: gestures cannot annotate with it
    assert "a label is a name" in app.shared.message.object
    with pytest.raises(SessionError, match="choose a label"):
        app.session.drag(KEY, 100, 200)
    box.value_input = "courtship"  # fixed: chosen, and the message goes away
    assert app.session.label == "courtship" and "a label is a name" not in app.shared.message.object
