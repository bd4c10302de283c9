"""etc/notifier.conf.sample lists every option notifier registers, as
oslo-config-generator writes it from the ``oslo.config.opts`` entry point."""

import configparser
import difflib
import re
import subprocess
import sys
import tomllib
from pathlib import Path

from notifier import conf as conf_module

ROOT = Path(__file__).resolve().parents[2]
GENERATOR_CONF = ROOT / "etc" / "notifier-config-generator.conf"
SAMPLE = ROOT / "etc" / "notifier.conf.sample"
REGENERATE = ".venv/bin/oslo-config-generator --config-file etc/notifier-config-generator.conf"


def generate(output):
    """Run oslo-config-generator with the committed generator config."""
    subprocess.run(
        [
            sys.executable,
            "-c",
            "from oslo_config.generator import main; main()",
            "--config-file",
            str(GENERATOR_CONF),
            "--output-file",
            str(output),
        ],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    )
    return output.read_text()


def test_generator_config_writes_the_committed_sample_from_the_notifier_namespace():
    parser = configparser.ConfigParser()
    parser.read(GENERATOR_CONF)
    assert parser["DEFAULT"]["output_file"] == "etc/notifier.conf.sample"
    assert parser["DEFAULT"]["namespace"] == "notifier"
    assert parser["DEFAULT"]["wrap_width"] == "79"


def test_notifier_namespace_entry_point_lists_notifier_options():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    entry_points = pyproject["project"]["entry-points"]["oslo.config.opts"]
    assert entry_points["notifier"] == "notifier.conf:list_opts"


def test_sample_config_is_what_the_generator_writes_today(tmp_path):
    expected = generate(tmp_path / "notifier.conf.sample")
    assert SAMPLE.exists(), f"etc/notifier.conf.sample is missing; create it with:\n  {REGENERATE}"
    committed = SAMPLE.read_text()
    if committed != expected:
        diff = "".join(
            difflib.unified_diff(
                committed.splitlines(keepends=True),
                expected.splitlines(keepends=True),
                "etc/notifier.conf.sample (committed)",
                "generated from notifier/conf/",
            )
        )
        raise AssertionError(
            "etc/notifier.conf.sample is out of date with notifier/conf/; "
            f"regenerate it from the project root with:\n  {REGENERATE}\n"
            "(if an option is missing from the output, `pip install -e .` again "
            "so the oslo.config.opts entry point is current)\n\n" + diff
        )


def test_sample_config_mentions_every_registered_option():
    text = SAMPLE.read_text()
    for group, opts in conf_module.list_opts():
        assert f"[{group or 'DEFAULT'}]" in text
        for opt in opts:
            assert re.search(rf"^#{re.escape(opt.dest)} =", text, re.MULTILINE), (
                f"{group}.{opt.dest} missing from the sample"
            )
