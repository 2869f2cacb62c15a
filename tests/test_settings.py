"""Settings come from the environment; a bad value is refused by name."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from moderation.core import settings as settings_module
from moderation.core.settings import DEFAULT_HOLD_THRESHOLDS, SettingsError, from_env
from moderation.ops.cli import main


def test_defaults():
    settings = from_env({"MODERATION_SECRET_KEY_FILE": "/nonexistent"})
    assert settings.redis_url == "redis://127.0.0.1:6379/0"
    assert (settings.host, settings.port) == ("127.0.0.1", 8000)
    assert settings.toxicity_model == "auto"
    assert settings.torch_threads == 1
    assert (settings.runtime, settings.precision) == ("auto", "auto")
    assert settings.engine_cache_dir is None
    assert settings.policy.auto_reject is False
    assert settings.policy.hold == DEFAULT_HOLD_THRESHOLDS
    assert settings.secret_key is None


def test_values_are_parsed(tmp_path):
    checkpoint = tmp_path / "model.ckpt"
    checkpoint.write_bytes(b"")
    settings = from_env(
        {
            "REDIS_URL": "redis://example:6380/2",
            "PORT": "9000",
            "MODERATION_TOXICITY_MODEL": f"detoxify:{checkpoint}",
            "MODERATION_DETOXIFY_CONFIG_DIR": str(tmp_path),
            "MODERATION_PRECISION": "BF16",
            "MODERATION_RUNTIME": " OpenVINO ",
            "MODERATION_ENGINE_CACHE_DIR": str(tmp_path / "engines"),
            "MODERATION_ALLOW_PRIVATE_CALLBACKS": "true",
            "MODERATION_HOLD_THRESHOLDS": "toxicity=0.5, spam=0.9",
            "MODERATION_AUTO_REJECT": "yes",
            "MODERATION_SECRET_KEY": "k" * 40,
        }
    )
    assert settings.port == 9000
    assert settings.toxicity_model == f"detoxify:{checkpoint}"
    assert settings.detoxify_config_dir == tmp_path
    assert settings.precision == "bf16"
    assert settings.runtime == "openvino"
    assert settings.engine_cache_dir == tmp_path / "engines"
    assert settings.allow_private_callbacks is True
    assert settings.policy.hold["toxicity"] == 0.5
    assert settings.policy.hold["spam"] == 0.9
    assert settings.policy.hold["insult"] == DEFAULT_HOLD_THRESHOLDS["insult"]
    assert settings.policy.auto_reject is True


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("PORT", "eighty"),
        ("PORT", "70000"),
        ("REDIS_URL", "http://localhost"),
        ("MODERATION_TOXICITY_MODEL", "gpt"),
        ("MODERATION_TOXICITY_MODEL", "detoxify:nonexistent-variant"),
        ("MODERATION_DETOXIFY_CONFIG_DIR", "/no/such/dir"),
        ("MODERATION_PRECISION", "fp8"),
        ("MODERATION_RUNTIME", "tensorflow"),
        ("MODERATION_RUNTIME", "onnx"),
        ("MODERATION_ENGINE_CACHE_DIR", "/dev/null/engines"),
        ("MODERATION_ALLOW_PRIVATE_CALLBACKS", "maybe"),
        ("MODERATION_HOLD_THRESHOLDS", "toxicity=2"),
        ("MODERATION_HOLD_THRESHOLDS", "toxicity"),
        ("MODERATION_SECRET_KEY", "short"),
        ("MODERATION_TORCH_THREADS", "0"),
        ("MODERATION_PUBLIC_URL", "moderation.example"),
        ("MODERATION_PUBLIC_URL", "ftp://moderation.example/"),
        ("MODERATION_PUBLIC_URL", "https://moderation.example/?key=x"),
        ("MODERATION_PUBLIC_URL", "https://user@moderation.example/"),
        ("MODERATION_PUBLIC_URL", "https://moderation.example:port/"),
    ],
)
def test_bad_values_name_the_variable(variable, value):
    with pytest.raises(SettingsError) as caught:
        from_env({variable: value})
    assert caught.value.variable == variable
    assert variable in str(caught.value)


@pytest.mark.parametrize("runtime", ["torch", "onnxruntime", "openvino", "auto"])
def test_every_runtime_is_accepted(runtime):
    no_key_file = {"MODERATION_SECRET_KEY_FILE": "/nonexistent"}
    assert from_env({**no_key_file, "MODERATION_RUNTIME": runtime.upper()}).runtime == runtime


def test_the_engine_cache_dir_is_created_or_refused_with_the_reason(tmp_path):
    no_key_file = {"MODERATION_SECRET_KEY_FILE": "/nonexistent"}
    wanted = tmp_path / "deep" / "engines"
    settings = from_env({**no_key_file, "MODERATION_ENGINE_CACHE_DIR": str(wanted)})
    assert settings.engine_cache_dir == wanted and wanted.is_dir()
    assert from_env({**no_key_file, "MODERATION_ENGINE_CACHE_DIR": str(wanted)}).engine_cache_dir
    (tmp_path / "file").write_text("")
    with pytest.raises(SettingsError, match=r"cannot create .*file/engines.*: Not a directory"):
        from_env({**no_key_file, "MODERATION_ENGINE_CACHE_DIR": str(tmp_path / "file/engines")})


def test_public_url_ends_in_a_slash():
    no_key_file = {"MODERATION_SECRET_KEY_FILE": "/nonexistent"}
    settings = from_env({**no_key_file, "MODERATION_PUBLIC_URL": "https://mod.example/perspective"})
    assert settings.public_url == "https://mod.example/perspective/"
    assert from_env(no_key_file).public_url is None


def test_coral_timeout_is_under_corals_default_and_bounded():
    no_key_file = {"MODERATION_SECRET_KEY_FILE": "/nonexistent"}
    assert from_env(no_key_file).coral_timeout < 0.2  # Coral's phase timeout: 200 ms
    assert from_env({**no_key_file, "MODERATION_CORAL_TIMEOUT": "1.5"}).coral_timeout == 1.5
    for bad in ("0", "-0.1", "11", "nan", "fast"):
        with pytest.raises(SettingsError) as caught:
            from_env({**no_key_file, "MODERATION_CORAL_TIMEOUT": bad})
        assert caught.value.variable == "MODERATION_CORAL_TIMEOUT"


def test_scoring_retry_intervals_are_read_as_the_webhooks_are():
    no_key_file = {"MODERATION_SECRET_KEY_FILE": "/nonexistent"}
    assert from_env(no_key_file).scoring_retry_intervals == (2, 10, 60)
    raw = " 1, 5,30 ,"
    settings = from_env({**no_key_file, "MODERATION_SCORING_RETRY_INTERVALS": raw})
    assert settings.scoring_retry_intervals == (1, 5, 30)
    webhooks = from_env({**no_key_file, "MODERATION_WEBHOOK_RETRY_INTERVALS": raw})
    assert webhooks.webhook_retry_intervals == settings.scoring_retry_intervals
    for bad in ("-1", "2,ten", "1.5"):
        with pytest.raises(SettingsError) as caught:
            from_env({**no_key_file, "MODERATION_SCORING_RETRY_INTERVALS": bad})
        assert caught.value.variable == "MODERATION_SCORING_RETRY_INTERVALS"


def test_each_scoring_retry_waits_its_interval_and_the_last_one_repeats():
    from moderation.storage.job_queues import retry_schedule

    assert retry_schedule(3, (2, 10, 60)) == [2, 10, 60]
    assert retry_schedule(2, (2, 10, 60)) == [2, 10]
    assert retry_schedule(5, (1, 7)) == [1, 7, 7, 7, 7]
    assert retry_schedule(2, ()) == [0, 0]
    assert retry_schedule(0, (2,)) == []


def test_scoring_jobs_are_enqueued_with_the_configured_intervals(settings, redis_client):
    from rq.job import Job

    from moderation.storage.job_queues import ScoringEnqueuer

    own = settings.with_overrides(job_retries=4, scoring_retry_intervals=(1, 7))
    with redis_client.pipeline() as pipe:
        job_id = ScoringEnqueuer(redis_client, own)(pipe, "news", "c-1")
        pipe.execute()
    job = Job.fetch(job_id, connection=redis_client)
    assert (job.retries_left, job.retry_intervals) == (4, [1, 7, 7, 7])


def test_the_command_line_stops_with_the_variable_named():
    result = CliRunner().invoke(main, ["sites", "list"], env={"PORT": "eighty"})
    assert result.exit_code != 0
    assert "PORT" in result.output


def test_secret_key_is_read_from_the_key_file(tmp_path):
    key_file = tmp_path / "secret_key"
    key_file.write_text("s" * 48 + "\n")
    settings = from_env({"MODERATION_SECRET_KEY_FILE": str(key_file)})
    assert settings.secret_key == "s" * 48


def test_every_variable_is_in_the_readme():
    from pathlib import Path

    readme = (Path(__file__).parent.parent / "README.md").read_text()
    missing = [v for v in settings_module.ENVIRONMENT_VARIABLES if f"`{v}`" not in readme]
    assert missing == []
