"""The deployment files agree with the code: docker-compose.yml, the
Dockerfile, .dockerignore and etc/docker/notifier.conf.

No Docker engine runs where the tests run, so these files are checked by
parsing them: every command a container runs must parse with notifier's own
argument parser, every option in the compose configuration must be one
notifier registers, and the image must get every file `pip install .` needs.
"""

import configparser
import fnmatch
import json
import posixpath
import re
import shlex
import tomllib
from pathlib import Path

import pytest
import yaml

from notifier import conf as conf_module
from notifier.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
DOCKER_CONF = ROOT / "etc" / "docker" / "notifier.conf"
NGINX_CONF = ROOT / "etc" / "docker" / "nginx.conf"
PYPROJECT = ROOT / "pyproject.toml"

CONFIG_IN_CONTAINER = "/etc/notifier/notifier.conf"
# compose service -> the `notifier` role it runs
NOTIFIER_SERVICES = {"api": "api", "worker": "worker", "scheduler": "scheduler"}
SCALABLE_SERVICES = ["worker", "scheduler"]
RESTART_POLICIES = {"always", "unless-stopped", "on-failure"}
DEPENDS_ON_CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}


# -- helpers ---------------------------------------------------------------


def load_compose():
    with COMPOSE_FILE.open() as handle:
        return yaml.safe_load(handle)


def service(name):
    return load_compose()["services"][name]


def as_argv(command):
    """A compose command (list or shell-style string) as a list."""
    return list(command) if isinstance(command, list) else shlex.split(command)


def healthcheck_argv(check):
    """The argv a compose healthcheck runs: ``[CMD, ...]``, ``[CMD-SHELL, s]``
    or a plain string (run by the shell)."""
    test = check["test"]
    if isinstance(test, str):
        return shlex.split(test)
    kind, rest = test[0], test[1:]
    if kind == "CMD":
        return list(rest)
    assert kind == "CMD-SHELL", f"unexpected healthcheck test {test!r}"
    return shlex.split(" ".join(rest))


def config_files(argv):
    paths = []
    for index, arg in enumerate(argv):
        if arg == "--config-file":
            paths.append(argv[index + 1])
        elif arg.startswith("--config-file="):
            paths.append(arg.split("=", 1)[1])
    return paths


def mounts(svc):
    """(source, target) of every volume of a compose service."""
    result = []
    for volume in svc.get("volumes", []):
        if isinstance(volume, dict):
            result.append((volume.get("source"), volume["target"]))
        else:
            parts = volume.split(":")
            if len(parts) == 1:
                result.append((None, parts[0]))
            else:
                result.append((parts[0], parts[1]))
    return result


def container_ports(svc):
    """(host part or None, container port) of every published port."""
    result = []
    for port in svc.get("ports", []):
        if isinstance(port, dict):
            result.append((port.get("published"), int(port["target"])))
            continue
        spec = str(port).split("/")[0]
        host, _, target = spec.rpartition(":")
        result.append((host or None, int(target)))
    return result


def duration_seconds(text):
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001, "us": 1e-6}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)", str(text))
    assert parts and "".join(n + u for n, u in parts) == str(text), (
        f"not a compose duration: {text!r}"
    )
    return sum(float(number) * units[unit] for number, unit in parts)


def dockerfile_instructions():
    """(INSTRUCTION, argument text) pairs, continuation lines joined and
    comment lines dropped."""
    instructions, current = [], ""
    for line in DOCKERFILE.read_text().splitlines():
        stripped = line.strip()
        if stripped.startswith("#") or (not stripped and not current):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        current += stripped
        if current:
            keyword, _, rest = current.partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
        current = ""
    return instructions


def exec_form(text):
    """The argv of an exec-form (JSON) ENTRYPOINT/CMD/COPY; shell form splits."""
    text = text.strip()
    if text.startswith("["):
        return json.loads(text)
    return shlex.split(text)


def dockerfile_copies():
    """(sources, destination, index) of every COPY/ADD from the build context."""
    copies = []
    for index, (keyword, rest) in enumerate(dockerfile_instructions()):
        if keyword not in ("COPY", "ADD"):
            continue
        args = exec_form(rest) if rest.lstrip().startswith("[") else shlex.split(rest)
        flags = [a for a in args if a.startswith("--")]
        if any(flag.startswith("--from") for flag in flags):
            continue
        paths = [a for a in args if not a.startswith("--")]
        copies.append((paths[:-1], paths[-1], index))
    return copies


def first_instruction_index(predicate):
    for index, (keyword, rest) in enumerate(dockerfile_instructions()):
        if predicate(keyword, rest):
            return index
    raise AssertionError("no such Dockerfile instruction")


def _glob_regex(pattern):
    """A .dockerignore pattern as a regex (Go filepath.Match plus `**`)."""
    out, i = "", 0
    while i < len(pattern):
        char = pattern[i]
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif char == "*":
            out, i = out + "[^/]*", i + 1
        elif char == "?":
            out, i = out + "[^/]", i + 1
        elif char == "[":
            end = pattern.index("]", i)
            out, i = out + pattern[i : end + 1], end + 1
        else:
            out, i = out + re.escape(char), i + 1
    return re.compile(out)


def dockerignore_excludes(path):
    """True if .dockerignore keeps ``path`` out of the build context: the
    last pattern matching the path or one of its parents decides (moby's
    patternmatcher)."""
    parts = path.strip("/").split("/")
    candidates = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
    excluded = False
    if not DOCKERIGNORE.exists():
        return False
    for line in DOCKERIGNORE.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        pattern = posixpath.normpath(line.lstrip("!").strip()).lstrip("/")
        regex = _glob_regex(pattern)
        if any(regex.fullmatch(candidate) for candidate in candidates):
            excluded = not negated
    return excluded


def copy_covers(source, path):
    """True if COPY ``source`` brings repository path ``path`` along."""
    source = posixpath.normpath(source).lstrip("/") or "."
    if source == ".":
        return True
    return path == source or path.startswith(source + "/") or fnmatch.fnmatchcase(path, source)


def pyproject_needs():
    """Repository paths `pip install .` reads: pyproject.toml, the readme and
    license files it names, and the top-level packages it includes."""
    project_toml = tomllib.loads(PYPROJECT.read_text())
    project = project_toml["project"]
    needed = ["pyproject.toml"]
    readme = project.get("readme")
    if isinstance(readme, dict):
        readme = readme.get("file")
    if readme:
        needed.append(readme)
    license_ = project.get("license")
    if isinstance(license_, dict) and "file" in license_:
        needed.append(license_["file"])
    needed += project.get("license-files", [])
    setuptools = project_toml["tool"]["setuptools"]
    package_dir = setuptools.get("package-dir", {})
    for package in setuptools["packages"]:
        folder = package_dir.get(package, package.replace(".", "/")).split("/")[0]
        if folder not in needed:
            needed.append(folder)
    return needed


def registered_options():
    """{ini section: option names} of every option notifier registers."""
    options = {}
    for group, opts in conf_module.list_opts():
        section = group or "DEFAULT"
        for opt in opts:
            options.setdefault(section, set()).update({opt.name, opt.dest})
    return options


# -- docker-compose.yml ----------------------------------------------------


def test_compose_file_has_no_obsolete_version_key():
    assert "version" not in load_compose()


def test_compose_file_defines_redis_api_worker_scheduler_and_mailpit():
    assert {"redis", "api", "worker", "scheduler", "mailpit"} <= set(load_compose()["services"])


@pytest.mark.parametrize("name,role", sorted(NOTIFIER_SERVICES.items()))
def test_each_notifier_service_command_parses_as_its_own_role(name, role):
    svc = service(name)
    assert "entrypoint" not in svc, "the image's ENTRYPOINT (notifier) must run"
    args = build_parser().parse_args(as_argv(svc["command"]))
    assert args.role == role
    assert args.config_file == [CONFIG_IN_CONTAINER]


@pytest.mark.parametrize("name,role", sorted(NOTIFIER_SERVICES.items()))
def test_each_notifier_service_healthcheck_runs_notifier_healthcheck_for_its_role(name, role):
    argv = healthcheck_argv(service(name)["healthcheck"])
    assert argv[0] == "notifier"
    args = build_parser().parse_args(argv[1:])
    assert (args.role, args.target) == ("healthcheck", role)
    assert args.config_file == [CONFIG_IN_CONTAINER]


@pytest.mark.parametrize("name", sorted(NOTIFIER_SERVICES))
def test_each_notifier_service_mounts_the_config_file_its_commands_name(name):
    svc = service(name)
    mounted = dict((target, source) for source, target in mounts(svc))
    named = config_files(as_argv(svc["command"])) + config_files(
        healthcheck_argv(svc["healthcheck"])
    )
    assert named
    for path in named:
        assert path in mounted, f"{name} names {path} but does not mount it"
        source = mounted[path]
        assert (ROOT / source).resolve() == DOCKER_CONF.resolve(), (
            f"{name} mounts {source} at {path}, not etc/docker/notifier.conf"
        )


@pytest.mark.parametrize("name", sorted(NOTIFIER_SERVICES))
def test_each_notifier_service_runs_the_image_built_from_this_directory(name):
    build = service(name)["build"]
    context = build if isinstance(build, str) else build.get("context", ".")
    dockerfile = "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
    assert (ROOT / context).resolve() == ROOT
    assert (ROOT / context / dockerfile).resolve() == DOCKERFILE


def test_notifier_services_share_one_image_name():
    images = {service(name).get("image") for name in NOTIFIER_SERVICES}
    assert len(images) == 1 and None not in images, images


@pytest.mark.parametrize("name", sorted(NOTIFIER_SERVICES) + ["redis", "mailpit", "proxy"])
def test_each_service_has_a_restart_policy(name):
    assert service(name).get("restart") in RESTART_POLICIES


@pytest.mark.parametrize("name", sorted(NOTIFIER_SERVICES))
def test_each_notifier_service_waits_for_a_healthy_redis(name):
    depends_on = service(name)["depends_on"]
    assert depends_on["redis"]["condition"] == "service_healthy"


def test_every_dependency_is_a_defined_service_with_a_valid_condition():
    services = load_compose()["services"]
    for name, svc in services.items():
        depends_on = svc.get("depends_on", {})
        if isinstance(depends_on, list):
            depends_on = {dep: {"condition": "service_started"} for dep in depends_on}
        for dependency, spec in depends_on.items():
            assert dependency in services, f"{name} depends on unknown {dependency}"
            assert dependency != name
            assert spec["condition"] in DEPENDS_ON_CONDITIONS, (name, spec)
            if spec["condition"] == "service_healthy":
                assert "healthcheck" in services[dependency], (
                    f"{name} waits for {dependency} to be healthy, which has no healthcheck"
                )


def test_redis_keeps_an_append_only_file_fsynced_every_second_and_never_evicts():
    argv = as_argv(service("redis")["command"])
    assert argv[0] == "redis-server"
    settings = dict(zip(argv[1::2], argv[2::2]))
    assert settings.get("--appendonly") == "yes"
    assert settings.get("--appendfsync") == "everysec"
    assert settings.get("--maxmemory-policy") == "noeviction"


def test_redis_has_a_ping_healthcheck():
    argv = healthcheck_argv(service("redis")["healthcheck"])
    assert argv[:2] == ["redis-cli", "ping"]


def test_redis_keeps_its_data_in_a_named_volume():
    named_volumes = load_compose().get("volumes") or {}
    sources = [source for source, target in mounts(service("redis")) if target == "/data"]
    assert sources and sources[0] in named_volumes, (
        "mount a named volume (declared under top-level volumes:) at /data"
    )


@pytest.mark.parametrize("name", SCALABLE_SERVICES)
def test_worker_and_scheduler_have_no_container_name_or_host_port_so_they_scale(name):
    svc = service(name)
    assert "container_name" not in svc
    assert all(host is None for host, _ in container_ports(svc)), (
        f"{name} publishes a fixed host port: --scale {name}=2 would fail"
    )


def test_worker_stop_grace_period_leaves_time_for_a_warm_shutdown():
    assert duration_seconds(service("worker")["stop_grace_period"]) >= 30


def nginx_directives():
    """(name, arguments) of every simple directive of etc/docker/nginx.conf."""
    text = re.sub(r"#[^\n]*", "", NGINX_CONF.read_text())
    statements = re.findall(r"([^;{}]*);", text)  # blocks end in { or }, not ;
    return [(parts[0], parts[1:]) for statement in statements if (parts := shlex.split(statement))]


def nginx_directive(name):
    return [args for directive, args in nginx_directives() if directive == name]


def test_api_binds_every_interface_and_is_reached_only_through_the_proxy():
    conf = conf_module.load_conf(["--config-file", str(DOCKER_CONF)])
    assert conf.api.bind_host == "0.0.0.0"
    assert "ports" not in service("api"), "clients must not bypass the buffering proxy"
    assert [["api:" + str(conf.api.bind_port)]] == nginx_directive("server")


def test_proxy_runs_nginx_with_the_config_file_it_mounts():
    svc = service("proxy")
    assert svc["image"].split(":")[0] == "nginx"
    assert ("./etc/docker/nginx.conf", "/etc/nginx/nginx.conf") in mounts(svc)
    assert NGINX_CONF.exists()
    assert svc["depends_on"]["api"]["condition"] == "service_healthy"


def test_proxy_publishes_the_port_it_listens_on():
    [[listen]] = nginx_directive("listen")
    assert (None, int(listen)) in [(None, port) for _, port in container_ports(service("proxy"))]


def test_proxy_buffers_whole_requests_with_client_deadlines():
    conf = conf_module.load_conf(["--config-file", str(DOCKER_CONF)])
    assert nginx_directive("proxy_request_buffering") == [["on"]]
    for name in ("client_header_timeout", "client_body_timeout", "send_timeout"):
        [[value]] = nginx_directive(name)
        assert 0 < duration_seconds(value) <= 60, name
    [[body_size]] = nginx_directive("client_max_body_size")
    [[buffer_size]] = nginx_directive("client_body_buffer_size")
    assert body_size == buffer_size  # bodies stay in memory
    assert int(body_size.removesuffix("k")) * 1024 >= conf.transport.max_messages_post_size


def test_proxy_healthcheck_pings_the_api_through_the_proxy():
    [[listen]] = nginx_directive("listen")
    argv = healthcheck_argv(service("proxy")["healthcheck"])
    assert argv[0] == "wget"
    assert f"http://127.0.0.1:{listen}/v2/ping" in argv


def test_mailpit_catches_smtp_on_1025_and_serves_its_web_ui_on_8025():
    svc = service("mailpit")
    assert svc["image"].split(":")[0] == "axllent/mailpit"
    assert {1025, 8025} <= {port for _, port in container_ports(svc)}


# -- etc/docker/notifier.conf ------------------------------------------------


def test_compose_configuration_names_only_options_notifier_registers():
    conf_module.load_conf(["--config-file", str(DOCKER_CONF)])  # must load
    parser = configparser.ConfigParser(
        default_section="\0no-default", interpolation=None, strict=False
    )
    parser.optionxform = str
    parser.read(DOCKER_CONF)
    registered = registered_options()
    unknown = [
        f"[{section}] {key}"
        for section in parser.sections()
        for key in parser[section]
        if key not in registered.get(section, set())
    ]
    assert not unknown, (
        f"{DOCKER_CONF.relative_to(ROOT)} sets options notifier "
        f"does not register (oslo.config ignores them): {unknown}"
    )


def test_compose_configuration_values_are_valid_for_their_option_types():
    conf = conf_module.load_conf(["--config-file", str(DOCKER_CONF)])
    for group, opts in conf_module.list_opts():
        for opt in opts:
            # oslo.config converts lazily: reading raises on a bad value
            getattr(conf[group] if group else conf, opt.dest)


def test_compose_configuration_points_at_the_redis_service():
    conf = conf_module.load_conf(["--config-file", str(DOCKER_CONF)])
    match = re.fullmatch(r"redis://([^:/]+):(\d+)/\d+", conf.redis_url)
    assert match, conf.redis_url
    assert match.group(1) in load_compose()["services"]
    assert match.group(2) == "6379"


def test_compose_configuration_sets_heartbeat_files_so_health_checks_can_pass():
    conf = conf_module.load_conf(["--config-file", str(DOCKER_CONF)])
    assert conf.worker.heartbeat_file == "/tmp/notifier-worker.alive"
    assert conf.worker.scheduler_heartbeat_file == "/tmp/notifier-scheduler.alive"


# -- Dockerfile and .dockerignore --------------------------------------------


def test_dockerfile_builds_from_python_3_11_slim():
    keyword, rest = dockerfile_instructions()[0]
    assert keyword == "FROM"
    assert rest.split()[0] == "python:3.11-slim"


def test_dockerfile_entrypoint_is_notifier():
    entrypoints = [rest for keyword, rest in dockerfile_instructions() if keyword == "ENTRYPOINT"]
    assert entrypoints and exec_form(entrypoints[-1]) == ["notifier"]
    assert entrypoints[-1].lstrip().startswith("["), (
        "use the exec form so notifier gets signals directly"
    )


def test_dockerfile_default_command_serves_the_api_with_the_configuration_it_copies():
    commands = [rest for keyword, rest in dockerfile_instructions() if keyword == "CMD"]
    args = build_parser().parse_args(exec_form(commands[-1]))
    assert args.role == "api"
    assert args.config_file == [CONFIG_IN_CONTAINER]
    destinations = {dest: sources for sources, dest, _ in dockerfile_copies()}
    assert destinations.get(CONFIG_IN_CONTAINER) == ["etc/docker/notifier.conf"]


def test_dockerfile_runs_as_a_non_root_user():
    users = [rest.split(":")[0] for keyword, rest in dockerfile_instructions() if keyword == "USER"]
    assert users and users[-1] not in ("root", "0")


def test_dockerfile_installs_the_locked_versions_then_the_wheel_alone_without_extras():
    [command] = [
        rest
        for keyword, rest in dockerfile_instructions()
        if keyword == "RUN" and re.search(r"\bpip install\b", rest)
    ]
    steps = [step.strip() for step in command.split("&&")]
    assert steps[:3] == [
        "pip install --require-hashes -r requirements/runtime.txt",
        "pip wheel --no-deps -w /tmp/dist .",
        "pip install --no-deps /tmp/dist/notifier-*.whl",
    ]
    assert "[" not in command and " -e " not in command, command


def test_pyproject_lists_every_package_of_the_tree():
    listed = set(tomllib.loads(PYPROJECT.read_text())["tool"]["setuptools"]["packages"])
    found = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for top in ("notifier", "workers")
        for init in (ROOT / top).rglob("__init__.py")
    }
    assert found | {"notifier.templates"} == listed


def test_dockerfile_copies_everything_pyproject_needs_before_installing():
    install = first_instruction_index(
        lambda keyword, rest: keyword == "RUN" and "pip install" in rest
    )
    sources = [
        source for sources, _, index in dockerfile_copies() if index < install for source in sources
    ]
    missing = [
        path
        for path in pyproject_needs()
        if not any(copy_covers(source, path) for source in sources)
    ]
    assert not missing, f"the Dockerfile installs without copying {missing}"


def test_dockerfile_copies_the_templates_directory_before_building_the_wheel():
    build = first_instruction_index(lambda keyword, rest: keyword == "RUN" and "pip wheel" in rest)
    sources = [
        source for sources, _, index in dockerfile_copies() if index < build for source in sources
    ]
    assert any(copy_covers(source, "templates/email/notification.txt") for source in sources)


def test_every_file_the_dockerfile_copies_exists_and_is_in_the_build_context():
    for sources, _, _ in dockerfile_copies():
        for source in sources:
            if any(char in source for char in "*?["):
                matches = [str(p.relative_to(ROOT)) for p in ROOT.glob(source)]
            else:
                assert (ROOT / source).exists(), f"COPY {source}: no such path"
                matches = [posixpath.normpath(source)]
            for path in matches:
                assert not dockerignore_excludes(path), (
                    f"COPY {source}: .dockerignore leaves {path} out of the context"
                )


def test_build_context_includes_the_package_sources_and_the_readme():
    for path in [
        "pyproject.toml",
        "README.md",
        "notifier/cli/__init__.py",
        "notifier/conf/__init__.py",
        "workers/app.py",
        "templates/confirm.txt.j2",
    ]:
        assert not dockerignore_excludes(path), path


def test_build_context_leaves_out_vcs_virtualenv_tests_caches_and_dumps():
    for path in [
        ".git/HEAD",
        ".venv/bin/python",
        "tests/unit/test_deploy_files.py",
        "notifier/__pycache__/cli.cpython-311.pyc",
        "var/dump.rdb",
        "appendonlydir/appendonly.aof.1.incr.aof",
        ".env",
        "notifier.egg-info/PKG-INFO",
        ".hypothesis/examples",
    ]:
        assert dockerignore_excludes(path), path
