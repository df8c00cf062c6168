"""The option-schema helper: unknown keys, required keys, defaults, valid values."""
import pytest

from newbp_plugin.options import Option, check_options, is_bool, is_int, one_of, optional, parse_options


def test_known_options_pass():
    check_options({'a': 1, 'b': 2}, ['a', 'b', 'c'], 'Owner')
    check_options(None, ['a'], 'Owner')


def test_unknown_option_names_owner_key_match_and_valid_names():
    with pytest.raises(ValueError) as error:
        check_options({'pixel_op': {}}, ['pixel_opt', 'optim_g'], 'NewBPModel', prefix='train:')
    assert str(error.value) == ("NewBPModel: unknown option 'train:pixel_op' (did you mean 'pixel_opt'?); "
                                'valid options: pixel_opt, optim_g')


def test_unknown_option_without_close_match():
    with pytest.raises(ValueError, match=r"^Net: unknown option 'zzz'; valid options: width$"):
        check_options(['zzz'], ('width', ), 'Net')


SCHEMA = {
    'root': Option(),
    'size': Option(None, optional(lambda value: is_int(value, 1)), 'null or a positive integer'),
    'flip': Option(True, is_bool, 'true or false'),
    'mode': Option('a', one_of(('a', 'b')), 'a or b'),
}


def test_parse_options_fills_defaults_and_keeps_accepted_extras():
    parsed = parse_options({'root': 'x', 'size': 4, 'name': 'set'}, SCHEMA, 'Owner', also_valid=('name', ))
    assert parsed == {'root': 'x', 'size': 4, 'flip': True, 'mode': 'a', 'name': 'set'}


@pytest.mark.parametrize('options, message', [
    ({}, r'^Owner: option p:root is required$'),
    ({'root': 'x', 'size': 0}, r'^Owner: option p:size must be null or a positive integer, got 0$'),
    ({'root': 'x', 'size': True}, r'^Owner: option p:size must be null or a positive integer, got True$'),
    ({'root': 'x', 'flip': 'yes'}, r"^Owner: option p:flip must be true or false, got 'yes'$"),
    ({'root': 'x', 'mode': 'c'}, r"^Owner: option p:mode must be a or b, got 'c'$"),
    ({'root': 'x', 'mode': ['a']}, r"^Owner: option p:mode must be a or b, got \['a'\]$"),
    ({'root': 'x', 'sise': 3}, r"^Owner: unknown option 'p:sise' \(did you mean 'size'\?\)"),
])
def test_parse_options_names_the_key_at_fault(options, message):
    with pytest.raises(ValueError, match=message):
        parse_options(options, SCHEMA, 'Owner', prefix='p:')
