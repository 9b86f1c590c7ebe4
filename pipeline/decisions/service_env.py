"""What a release's `env` may hold: the rules, as one pure function and its constants.

A release's env becomes the environment of a process the worker starts (local target)
or of a pod (Kubernetes), and it is written by whoever can start a workflow. So it is
plain application configuration only; anything that steers how a program is loaded,
where it sends traffic, or what the pipeline itself reads is refused:

- dynamic loader and libc: `LD_*`, `DYLD_*`, `GCONV_PATH`, `GLIBC_TUNABLES`, `MALLOC_*`,
  and the rest of glibc's own "unsecure" list (`GETCONF_DIR`, `HOSTALIASES`,
  `LOCALDOMAIN`, `LOCPATH`, `NIS_PATH`, `NLSPATH`, `RESOLV_HOST_CONF`, `RES_OPTIONS`,
  `TMPDIR`, `TZDIR`), which glibc strips from setuid programs for the same reason:
  they make a program load code or data the caller chose;
- interpreters: `PYTHON*` (PYTHONPATH plus a sitecustomize.py runs code at start),
  `PERL*`, `RUBY*`, `LUA_*`, `NODE_*` (except `NODE_ENV`, which only apps read),
  `PHPRC`, `PHP_INI_SCAN_DIR`, the JVM's option variables and `CLASSPATH`;
- shells: `BASH_*` (including exported `BASH_FUNC_*` functions), `ENV`, `IFS`,
  `CDPATH`, `PS4`, `SHELLOPTS`, `PROMPT_COMMAND`, `SHELL`;
- search paths: `PATH`, and `HOME` and `XDG_*`, which decide which dotfiles and which
  user site-packages (`.pth` files run code) a program reads;
- trust and routing: `OPENSSL_*` (OPENSSL_CONF loads engines, i.e. shared libraries),
  `SSL_CERT_*`, `REQUESTS_CA_BUNDLE`, `CURL_CA_BUNDLE` (a swapped trust store), every
  `*_PROXY` and `PROXY` (traffic, and its credentials, sent elsewhere), `GIT_*`
  (`GIT_SSH_COMMAND` runs a command), `KUBERNETES_*` and `KUBECONFIG` (an in-cluster
  client would send its service-account token to another API server);
- the pipeline's and Temporal's own namespaces, `PIPELINE_*` and `TEMPORAL_*`: the
  worker's configuration and credentials live there, and a release must not pose as it;
- where a service keeps its data, `GALLERY_DATABASE_URL` and `GALLERY_FILES_DIR`: the
  worker sets them from its databases file (pipeline/database.py), so a release cannot
  point a canary at another database or directory.

Bounds keep a request from failing late and slowly (one environment string over
128 KiB makes exec fail with E2BIG; a NUL cannot be passed at all): at most
MAX_VARIABLES variables, names up to MAX_NAME_LENGTH characters, values up to
MAX_VALUE_LENGTH characters of text without control characters other than tab.

Secrets: workflow history is not a secret store, so a variable whose name looks like a
secret must hold a reference, `secret://NAME`. NAME is resolved only from what the
worker declares: its variable `PIPELINE_SECRET_NAME` on the local target, key NAME of
the Secret `<service>-secrets` on Kubernetes.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping

ENV_NAME_PATTERN = r"^[A-Z_][A-Z0-9_]*$"
SECRET_NAME_PATTERN = r"^[A-Z][A-Z0-9_]{0,63}$"
SECRET_NAME_HINT = re.compile(r"(PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY|PRIVATE_KEY|CREDENTIAL)")
SECRET_REFERENCE_PREFIX = "secret://"
WORKER_SECRET_PREFIX = "PIPELINE_SECRET_"
"""`secret://NAME` reads the worker's variable PIPELINE_SECRET_NAME, and nothing else."""

MAX_VARIABLES = 64
MAX_NAME_LENGTH = 128
MAX_VALUE_LENGTH = 4096

DENIED_PREFIXES = (
    "LD_", "DYLD_", "MALLOC_", "PYTHON", "PERL", "RUBY", "LUA_", "NODE_", "BASH_",
    "XDG_", "OPENSSL_", "SSL_CERT_", "GIT_", "KUBERNETES_", "PIPELINE_", "TEMPORAL_",
)
DENIED_SUFFIXES = ("_PROXY",)
DENIED_NAMES = frozenset({
    "GCONV_PATH", "GLIBC_TUNABLES", "GETCONF_DIR", "HOSTALIASES", "LOCALDOMAIN", "LOCPATH",
    "NIS_PATH", "NLSPATH", "RESOLV_HOST_CONF", "RES_OPTIONS", "TMPDIR", "TZDIR",
    "JAVA_TOOL_OPTIONS", "_JAVA_OPTIONS", "JDK_JAVA_OPTIONS", "CLASSPATH", "PHPRC", "PHP_INI_SCAN_DIR",
    "ENV", "IFS", "CDPATH", "PS4", "SHELLOPTS", "PROMPT_COMMAND", "SHELL", "PATH", "HOME",
    "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "PROXY", "KUBECONFIG",
    "GALLERY_DATABASE_URL", "GALLERY_FILES_DIR",
})
ALLOWED_DESPITE_PREFIX = frozenset({"NODE_ENV"})


def env_problems(env: Mapping[str, str]) -> list[str]:
    """Every reason `env` may not be a release's environment, each naming its variable;
    empty when it may."""
    problems = [f"{len(env)} variables, at most {MAX_VARIABLES} allowed"] if len(env) > MAX_VARIABLES else []
    for name, value in env.items():
        problem = _name_problem(name) or _value_problem(name, value)
        if problem:
            problems.append(problem)
    return problems


def secret_name(value: str) -> str | None:
    """NAME of a `secret://NAME` value, None for a plain value."""
    return value.removeprefix(SECRET_REFERENCE_PREFIX) if value.startswith(SECRET_REFERENCE_PREFIX) else None


def worker_secret_variable(name: str) -> str:
    """The worker's variable that holds secret NAME on the local target."""
    return f"{WORKER_SECRET_PREFIX}{name}"


def _is_denied(name: str) -> bool:
    if name in ALLOWED_DESPITE_PREFIX:
        return False
    return name in DENIED_NAMES or name.startswith(DENIED_PREFIXES) or name.endswith(DENIED_SUFFIXES)


def _name_problem(name: str) -> str | None:
    if len(name) > MAX_NAME_LENGTH:
        return f"{name[:32]}...: name is {len(name)} characters, at most {MAX_NAME_LENGTH} allowed"
    if not re.fullmatch(ENV_NAME_PATTERN, name):
        return f"{name!r} is not a valid environment variable name (uppercase letters, digits and _)"
    if _is_denied(name):
        return f"{name} may not be set by a release: it steers how programs load, connect or are configured"
    return None


def _value_problem(name: str, value: str) -> str | None:
    if len(value) > MAX_VALUE_LENGTH:
        return f"{name}: value is {len(value)} characters, at most {MAX_VALUE_LENGTH} allowed"
    if any(_is_unsafe_character(character) for character in value):
        return f"{name}: value holds a control character (only tab is allowed) or is not valid text"
    reference = secret_name(value)
    if reference is not None and not re.fullmatch(SECRET_NAME_PATTERN, reference):
        return f"{name}: secret reference {value!r} must name a secret matching {SECRET_NAME_PATTERN}"
    if reference is None and SECRET_NAME_HINT.search(name):
        return (
            f"{name} looks like a secret; workflow history is not a secret store, "
            f"pass a reference such as '{SECRET_REFERENCE_PREFIX}{name}' instead"
        )
    return None


def _is_unsafe_character(character: str) -> bool:
    """C0/C1 controls, DEL (except tab), and lone surrogates, which no environment can carry."""
    return character != "\t" and unicodedata.category(character) in ("Cc", "Cs")
