"""Settings: `%Name%` references, local.settings.json, host.json TimeSpans and queue options."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import requests

from funchost.settings import (
    ConfigError,
    QueueOptions,
    apply_local_settings,
    load_host_config,
    load_local_settings,
    parse_timespan,
    resolve_setting_refs,
)
from funchost.testing import FuncHostError

if TYPE_CHECKING:
    from conftest import AppRunner


# --- %Name% references ---------------------------------------------------------------


def test_every_setting_reference_in_a_value_is_replaced() -> None:
    # given two settings
    env = {"Prefix": "jobs", "Env": "dev"}
    # when a value references both
    resolved = resolve_setting_refs("%Prefix%-%Env%-poison", env)
    # then both are replaced and the rest is kept
    assert resolved == "jobs-dev-poison"


def test_a_value_without_references_is_unchanged() -> None:
    # when a value has no %Name%, then it is returned as is
    assert resolve_setting_refs("plain-queue", {}) == "plain-queue"


def test_a_reference_to_an_undefined_setting_is_an_error_naming_it() -> None:
    # when a value references a setting nobody defined
    with pytest.raises(ConfigError) as refused:
        resolve_setting_refs("%Missing%", {"Other": "x"})
    # then the error names the setting
    assert "'Missing'" in str(refused.value)


def test_a_setting_defined_as_empty_resolves_to_empty() -> None:
    # given a setting that is defined but empty, then the reference resolves to ""
    assert resolve_setting_refs("a%Empty%b", {"Empty": ""}) == "ab"


# --- local.settings.json -------------------------------------------------------------


def test_local_settings_values_do_not_override_variables_already_set() -> None:
    # given an environment where one of the file's settings is already set
    environ = {"SetInBoth": "from-env"}
    # when the file's values are applied
    apply_local_settings({"SetInBoth": "from-file", "FromFileOnly": "file"}, environ)
    # then the environment keeps its value and gains the new one
    assert environ == {"SetInBoth": "from-env", "FromFileOnly": "file"}


def test_local_settings_values_are_read_as_strings(tmp_path: Path) -> None:
    # given a file with non-string values
    (tmp_path / "local.settings.json").write_text(
        json.dumps(
            {"IsEncrypted": False, "Values": {"Count": 3, "Flag": True, "Nothing": None, "S": "x"}}
        )
    )
    # when it is read
    values = load_local_settings(tmp_path)
    # then every value is text, and null is empty
    assert values == {"Count": "3", "Flag": "True", "Nothing": "", "S": "x"}


def test_a_missing_local_settings_file_means_no_values(tmp_path: Path) -> None:
    # given an app folder without local.settings.json, then there are no values
    assert load_local_settings(tmp_path) == {}


def test_a_local_settings_file_that_is_not_json_is_an_error_naming_it(tmp_path: Path) -> None:
    # given a broken local.settings.json
    (tmp_path / "local.settings.json").write_text("{not json")
    # when it is read, then the error names the file
    with pytest.raises(ConfigError, match="local.settings.json"):
        load_local_settings(tmp_path)


def test_local_settings_reach_the_app_and_its_bindings_but_the_environment_wins(
    run_app: AppRunner,
) -> None:
    # given local.settings.json defining the route part and two values, one also in the env
    values = {"SettingsRoute": "from-file", "FromFileOnly": "file", "SetInBoth": "from-file"}
    # when the app runs with SetInBoth set in its environment
    app = run_app.start("settings", local_settings=values, settings={"SetInBoth": "from-env"})
    response = requests.get(f"{app.url}/from-file/settings", timeout=10)
    # then the route was resolved from the file, and the function sees the env's value
    assert response.status_code == 200
    assert response.json() == {"FromFileOnly": "file", "SetInBoth": "from-env"}


# --- host.json -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("00:00:30", timedelta(seconds=30)),
        ("00:00:00.500", timedelta(milliseconds=500)),
        ("01:02:03", timedelta(hours=1, minutes=2, seconds=3)),
        ("1.02:03:04", timedelta(days=1, hours=2, minutes=3, seconds=4)),
        ("00:10:00", timedelta(minutes=10)),
    ],
)
def test_host_json_timespans_are_parsed(text: str, expected: timedelta) -> None:
    # given a TimeSpan as host.json writes it, then it parses to that duration
    assert parse_timespan(text, "x") == expected


@pytest.mark.parametrize("text", ["30", "30s", "00:60", "abc", ""])
def test_a_value_that_is_not_a_timespan_is_an_error_naming_the_setting(text: str) -> None:
    # given a value that is no TimeSpan, then the error names the host.json setting
    with pytest.raises(ConfigError, match="host.json functionTimeout"):
        parse_timespan(text, "functionTimeout")


def test_queue_options_default_to_azures_defaults() -> None:
    # when host.json has no queues section
    options = QueueOptions.from_host_json({})
    # then Azure's defaults apply
    assert options == QueueOptions(
        batch_size=16,
        new_batch_threshold=8,
        max_polling_interval=60.0,
        visibility_timeout=0.0,
        max_dequeue_count=5,
        message_encoding="base64",
    )


def test_queue_options_are_read_from_host_json() -> None:
    # given every queue option set
    section = {
        "batchSize": 32,
        "newBatchThreshold": 4,
        "maxPollingInterval": "00:00:02",
        "visibilityTimeout": "00:00:05",
        "maxDequeueCount": 2,
        "messageEncoding": "None",
    }
    # when they are read
    options = QueueOptions.from_host_json(section)
    # then each is honoured (the encoding name case-insensitively)
    assert options == QueueOptions(
        batch_size=32,
        new_batch_threshold=4,
        max_polling_interval=2.0,
        visibility_timeout=5.0,
        max_dequeue_count=2,
        message_encoding="none",
    )


def test_the_new_batch_threshold_defaults_to_half_the_batch_size() -> None:
    # given a batch size and no threshold, then the threshold is half of it
    assert QueueOptions.from_host_json({"batchSize": 10}).new_batch_threshold == 5


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"batchSize": 0}, "batchSize must be 1..32"),
        ({"batchSize": 33}, "batchSize must be 1..32"),
        ({"maxDequeueCount": 0}, "maxDequeueCount must be at least 1"),
        ({"messageEncoding": "utf8"}, "messageEncoding must be base64 or none"),
        ({"maxPollingInterval": "2s"}, "maxPollingInterval"),
    ],
)
def test_queue_options_out_of_bounds_are_refused(section: dict[str, object], message: str) -> None:
    # given a queue option outside what Azure accepts, then it is refused with the reason
    with pytest.raises(ConfigError, match=message):
        QueueOptions.from_host_json(section)


def test_a_missing_host_json_means_all_defaults(tmp_path: Path) -> None:
    # when an app folder without host.json is loaded
    config = load_host_config(tmp_path)
    # then every default applies
    assert config.route_prefix == "api"
    assert config.queues == QueueOptions()
    assert config.function_timeout is None


def test_host_json_route_prefix_and_function_timeout_are_read(tmp_path: Path) -> None:
    # given a host.json with a route prefix written with slashes, and a timeout
    (tmp_path / "host.json").write_text(
        json.dumps(
            {
                "version": "2.0",
                "functionTimeout": "00:05:00",
                "extensions": {"http": {"routePrefix": "/v1/"}},
            }
        )
    )
    # when it is loaded
    config = load_host_config(tmp_path)
    # then the prefix is normalised and the timeout is in seconds
    assert config.route_prefix == "v1"
    assert config.function_timeout == 300.0


def test_an_empty_route_prefix_is_kept_empty(tmp_path: Path) -> None:
    # given routePrefix "", then routes get no prefix at all
    (tmp_path / "host.json").write_text(json.dumps({"extensions": {"http": {"routePrefix": ""}}}))
    assert load_host_config(tmp_path).route_prefix == ""


def test_a_host_json_that_is_not_json_is_an_error_naming_it(tmp_path: Path) -> None:
    # given a broken host.json
    (tmp_path / "host.json").write_text("{")
    # when it is loaded, then the error names the file
    with pytest.raises(ConfigError, match="host.json"):
        load_host_config(tmp_path)


def test_a_bad_host_json_stops_funchost_at_start_with_the_reason(run_app: AppRunner) -> None:
    # given host.json with an impossible batch size
    host, _, _ = run_app.host_for(
        "settings",
        host_json={"extensions": {"queues": {"batchSize": 64}}},
        local_settings={"SettingsRoute": "x"},
    )
    # when funchost starts
    with pytest.raises(FuncHostError) as refused:
        host.start()
    # then it exits with status 2 and the reason
    assert refused.value.returncode == 2
    assert "batchSize must be 1..32, got 64" in refused.value.log
