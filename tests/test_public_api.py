"""The curated public API: every name in losslab.__all__ resolves, and the function names that
share their module's name stay callable after the module is imported explicitly."""
import importlib

import losslab


def test_every_public_name_resolves():
    missing = [n for n in losslab.__all__ if getattr(losslab, n, None) is None]
    assert not missing


def test_train_and_gradcheck_stay_functions_after_importing_their_modules():
    importlib.import_module("losslab.train")
    importlib.import_module("losslab.gradcheck")
    assert callable(losslab.train) and losslab.train.__name__ == "train"
    assert callable(losslab.gradcheck) and losslab.gradcheck.__name__ == "gradcheck"


def test_unknown_attribute_is_an_attribute_error():
    try:
        losslab.no_such_thing
    except AttributeError as e:
        assert "no_such_thing" in str(e)
    else:
        raise AssertionError("expected AttributeError")


def test_tracker_is_public():
    from losslab.tracker import Tracker

    assert "Tracker" in losslab.__all__ and losslab.Tracker is Tracker
