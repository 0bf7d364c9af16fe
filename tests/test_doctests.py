"""The examples in the public docstrings run against the installed package."""

import doctest

import pytest

import tokenpick
from tokenpick import _api, reference


@pytest.mark.parametrize("module", [_api, reference], ids=lambda m: m.__name__)
def test_docstring_examples(module):
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0


def test_public_functions_are_documented_with_visible_signatures():
    import inspect

    for name in tokenpick.__all__:
        obj = getattr(tokenpick, name)
        if callable(obj):
            assert obj.__doc__, name
            inspect.signature(obj)  # raises if the signature is hidden
