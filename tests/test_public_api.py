"""Every public name of the package resolves to a documented object."""

import pytest

import gpuseg


def test_every_public_name_resolves_and_is_documented():
    for name in gpuseg.__all__:
        obj = getattr(gpuseg, name)
        if name != "__version__":
            assert obj.__doc__, name


def test_unknown_name_raises_attribute_error():
    with pytest.raises(AttributeError, match="has no attribute 'does_not_exist'"):
        gpuseg.does_not_exist  # noqa: B018
