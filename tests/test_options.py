"""check_options: the shared fail-fast check of option keys."""
import pytest

from newbp_plugin.options import check_options


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
