"""Public surface: ``__all__`` matches the namespace, the registry is complete, errors nest."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import casefold.expressions as ex
from casefold.expressions import FUNCTIONS, Budget, EvaluationError, compile_expression

PKG = Path(ex.__file__).parent


def test_all_matches_public_namespace():
    public = {n for n in dir(ex) if not n.startswith("_")} - {"annotations"}
    modules = {n for n in public if type(getattr(ex, n)).__name__ == "module"}
    assert set(ex.__all__) == public - modules
    assert ex.__all__ == sorted(ex.__all__, key=lambda n: (not n.isupper(), n))


def test_error_tree():
    assert issubclass(ex.ParseError, ex.ExpressionError)
    assert issubclass(ex.UnknownFunctionError, ex.ParseError)
    assert issubclass(ex.ArityError, ex.ParseError)
    assert issubclass(ex.EvaluationError, ex.ExpressionError)
    assert issubclass(ex.BudgetExceededError, ex.EvaluationError)


def test_package_is_pure():
    allowed = {"casefold.expressions", "regex", "orjson", "yaml"}
    for path in PKG.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top == "casefold":
                    assert name.startswith("casefold.expressions"), (path, name)
                else:
                    import sys

                    assert top in sys.stdlib_module_names or top in allowed, (path, name)


TRACECAT_NAMES = """
lookup map_keys merge flatten_dict to_keys to_values zip_map is_json deserialize_json
deserialize_ndjson deserialize_yaml serialize_json serialize prettify_json serialize_yaml parse_csv
concat join split format replace slice prefix suffix capitalize titleize uppercase lowercase strip
slugify startswith endswith url_encode url_decode to_base64 from_base64 to_base64url from_base64url
hash_md5 hash_sha1 hash_sha256 hash_sha512 regex_extract regex_match regex_not_match uuid4
is_equal not_equal is_not_equal greater_than greater_than_or_equal less_than less_than_or_equal
is_null not_null is_not_null and or not contains is_in does_not_contain not_in is_not_in
contains_any_of contains_none_of is_empty not_empty is_not_empty length at compact drop_nulls
flatten unique union intersection difference symmetric_difference zip iter_product range
add sub mul div mod pow sum min max now utcnow today to_datetime parse_datetime parse_time
format_datetime to_isoformat to_timestamp from_timestamp set_timezone unset_timezone datetime
seconds minutes hours days weeks seconds_between minutes_between hours_between days_between
weeks_between get_second get_minute get_hour get_day get_year get_day_of_week get_month
is_working_hours ipv4_in_subnet ipv6_in_subnet ipv4_is_public ipv6_is_public check_ip_version
extract_ip extract_ipv4 extract_ipv6 extract_domains extract_urls extract_emails normalize_email
extract_md5 extract_sha1 extract_sha256 extract_sha512 extract_cves to_markdown_list
to_markdown_table to_markdown_tasks tabulate
default coalesce get sort_by group_by count_by fingerprint
""".split()


def test_catalogue_covers_the_tracecat_names_and_additions():
    missing = [n for n in TRACECAT_NAMES if n not in FUNCTIONS]
    assert not missing


def test_every_function_has_metadata():
    for name, info in FUNCTIONS.items():
        assert info.name == name
        assert info.doc, name
        assert info.category, name
        assert info.max_args is None or info.max_args >= info.min_args
        assert info.signature.startswith(f"FN.{name}(")


def test_metadata_examples():
    assert FUNCTIONS["lookup"].params == ("d", "k")
    assert (FUNCTIONS["join"].min_args, FUNCTIONS["join"].max_args) == (1, 2)
    assert FUNCTIONS["concat"].max_args is None
    assert not FUNCTIONS["uuid4"].deterministic and FUNCTIONS["lookup"].deterministic


def test_runtime_type_errors_name_the_argument():
    with pytest.raises(EvaluationError, match=r"FN.join: argument 1 \(items\) must be a list"):
        compile_expression("FN.join('abc', ',')").evaluate({})


def test_budget_validation():
    with pytest.raises(ValueError):
        Budget(max_steps=0)
    assert Budget().max_depth == 64


def test_errors_carry_source_and_position():
    with pytest.raises(EvaluationError) as info:
        compile_expression("TRIGGER.a + 1").evaluate({"TRIGGER": {"a": "x"}})
    err = info.value
    assert err.source == "TRIGGER.a + 1" and err.offset == 10
    assert "column 11" in str(err)
