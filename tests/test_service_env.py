"""The rules for a release's `env` (pipeline/decisions/service_env.py), one by one."""

from __future__ import annotations

import pytest

from pipeline.decisions.service_env import (
    MAX_NAME_LENGTH,
    MAX_VALUE_LENGTH,
    MAX_VARIABLES,
    env_problems,
    secret_name,
    worker_secret_variable,
)


def test_plain_configuration_and_secret_references_pass():
    assert env_problems({
        "GALLERY_ERROR_RATE": "0.5", "_PRIVATE": "", "FEATURE_X": "on\tand tabbed", "GREETING": "héllo ✓",
        "DB_PASSWORD": "secret://DB_PASSWORD", "UPSTREAM": "secret://UPSTREAM_URL", "NODE_ENV": "production",
        "LANG": "C.UTF-8", "TZ": "UTC",
    }) == []


@pytest.mark.parametrize("name", ["lower", "1ST", "WITH-DASH", "WITH SPACE", "", "A=B", "É", "TRAILING\n"])
def test_names_must_be_uppercase_letters_digits_and_underscores(name):
    [problem] = env_problems({name: "x"})
    assert repr(name) in problem and "not a valid environment variable name" in problem


@pytest.mark.parametrize("name", [
    "LD_PRELOAD", "LD_LIBRARY_PATH", "LD_AUDIT", "DYLD_INSERT_LIBRARIES",
    "PYTHONPATH", "PYTHONSTARTUP", "PYTHONHOME", "PYTHONUSERBASE", "PERL5LIB", "PERL5OPT", "RUBYOPT", "RUBYLIB",
    "LUA_INIT", "NODE_OPTIONS", "NODE_PATH", "NODE_EXTRA_CA_CERTS",
    "JAVA_TOOL_OPTIONS", "_JAVA_OPTIONS", "JDK_JAVA_OPTIONS", "CLASSPATH", "PHPRC", "PHP_INI_SCAN_DIR",
    "GCONV_PATH", "GLIBC_TUNABLES", "MALLOC_CHECK_", "MALLOC_ARENA_MAX", "LOCPATH", "NLSPATH", "HOSTALIASES",
    "RES_OPTIONS", "LOCALDOMAIN", "RESOLV_HOST_CONF", "NIS_PATH", "GETCONF_DIR", "TMPDIR", "TZDIR",
    "BASH_ENV", "BASH_FUNC_LS__", "ENV", "IFS", "CDPATH", "PS4", "SHELLOPTS", "PROMPT_COMMAND", "SHELL",
    "PATH", "HOME", "XDG_CONFIG_HOME",
    "OPENSSL_CONF", "OPENSSL_ENGINES", "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE",
    "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "PROXY", "GIT_SSH_COMMAND",
    "KUBERNETES_SERVICE_HOST", "KUBECONFIG",
    "PIPELINE_PROMETHEUS_TOKEN", "PIPELINE_SECRET_DB_PASSWORD", "TEMPORAL_ADDRESS", "TEMPORAL_API_KEY",
])
def test_loader_interpreter_shell_routing_and_pipeline_variables_are_refused(name):
    [problem] = env_problems({name: "/tmp/anything"})
    assert problem.startswith(f"{name} may not be set by a release")


def test_variables_that_only_share_a_word_with_denied_ones_pass():
    assert env_problems({"APP_PATH": "/srv", "HOMEPAGE": "x", "PROXY_MODE": "off", "MY_LD_FLAG": "1", "ENVIRONMENT": "prod"}) == []


def test_at_most_64_variables():
    assert env_problems({f"V{i}": "x" for i in range(MAX_VARIABLES)}) == []
    assert env_problems({f"V{i}": "x" for i in range(MAX_VARIABLES + 1)}) == ["65 variables, at most 64 allowed"]


def test_names_are_bounded():
    assert env_problems({"N" * MAX_NAME_LENGTH: "x"}) == []
    [problem] = env_problems({"N" * (MAX_NAME_LENGTH + 1): "x"})
    assert problem == f"{'N' * 32}...: name is 129 characters, at most 128 allowed"


def test_values_are_bounded():
    assert env_problems({"BIG": "x" * MAX_VALUE_LENGTH}) == []
    assert env_problems({"BIG": "x" * 1024 * 1024}) == ["BIG: value is 1048576 characters, at most 4096 allowed"]


@pytest.mark.parametrize("value", ["a\0b", "line\nbreak", "carriage\r", "esc\x1b[31m", "del\x7f", "c1\x85", "lone\ud800"])
def test_values_hold_no_control_characters_or_broken_text(value):
    assert env_problems({"VALUE": value}) == [
        "VALUE: value holds a control character (only tab is allowed) or is not valid text"
    ]


@pytest.mark.parametrize("name", ["DB_PASSWORD", "GITHUB_TOKEN", "STRIPE_API_KEY", "STRIPE_APIKEY", "SSH_PRIVATE_KEY",
                                  "AWS_SECRET", "DB_PASSWD", "CLOUD_CREDENTIALS"])
def test_a_name_that_looks_like_a_secret_must_hold_a_reference(name):
    [problem] = env_problems({name: "hunter2"})
    assert problem.startswith(f"{name} looks like a secret") and f"'secret://{name}'" in problem
    assert env_problems({name: f"secret://{name}"}) == []


@pytest.mark.parametrize("reference", ["secret://", "secret://db_password", "secret://../etc/passwd",
                                       "secret://DB-PASSWORD", "secret://1DB", "secret://_DB", f"secret://A{'B' * 64}"])
def test_a_secret_reference_names_a_secret_by_the_pattern(reference):
    [problem] = env_problems({"DB_PASSWORD": reference})
    assert problem.startswith(f"DB_PASSWORD: secret reference {reference!r} must name a secret matching")


def test_every_problem_is_reported_each_naming_its_variable():
    problems = env_problems({"LD_PRELOAD": "/x.so", "OK": "fine", "NUL": "\0", "API_TOKEN": "plain"})
    assert [problem.split()[0] for problem in problems] == ["LD_PRELOAD", "NUL:", "API_TOKEN"]


def test_secret_references_resolve_from_the_declared_prefix_only():
    assert secret_name("secret://DB_PASSWORD") == "DB_PASSWORD"
    assert secret_name("DB_PASSWORD") is None
    assert worker_secret_variable("DB_PASSWORD") == "PIPELINE_SECRET_DB_PASSWORD"
