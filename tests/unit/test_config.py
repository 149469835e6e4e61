from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from cti.config import ConfigError, config_warnings, load_config
from cti.control.config import ControlConfig
from cti.feature import ConfigSection, Feature


def test_defaults_have_both_lines_and_four_agents():
    config = load_config()
    assert config.lines_by_did == {"12345": "12345", "96181": "96181"}
    assert [a.extension for a in config.agents] == ["1001", "1002", "1003", "1004"]
    assert config.ami.host == "127.0.0.1"


def test_layers_file_then_env_then_overrides(tmp_path: Path):
    path = tmp_path / "hotline.toml"
    path.write_text(
        'ring_timeout_s = 20\n[ami]\nport = 6001\nsecret = "from-file"\n'
        '[[lines]]\ndid = "0571-12345"\nline = "12345"\nqueue = "q"\n',
        encoding="utf-8",
    )
    config = load_config(
        path,
        env={"HOTLINE_AMI_SECRET": "from-env", "UNRELATED": "x"},
        overrides={"ring_timeout_s": 9},
    )
    assert config.ami.port == 6001
    assert config.ami.secret == "from-env"
    assert config.ring_timeout_s == 9
    assert config.lines_by_did == {"0571-12345": "12345"}


@pytest.mark.parametrize(
    ("toml", "key", "words"),
    [
        ("ring_timeout_s = 'soon'", "ring_timeout_s", "whole number"),
        ("ring_timeout_s = -3", "ring_timeout_s", "greater than 0"),
        ("[ami]\nprot = 1", "ami.prot", "unknown key"),
        ("ami = 3", "ami", "expected a table"),
        ("[[lines]]\ndid = '12345'\nline = '12345'", "lines[0].queue", "missing"),
        ("[[agents]]\nextension = 'abc'\nname = 'x'", "agents[0].extension", "digits"),
        (
            "[[agents]]\nextension = '1'\nname = 'x'\n[[agents]]\nextension = '1'\nname = 'y'",
            "agents",
            "twice",
        ),
    ],
)
def test_bad_file_values_name_the_key(tmp_path: Path, toml: str, key: str, words: str):
    path = tmp_path / "bad.toml"
    path.write_text(toml, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.key == key
    assert words in str(info.value)


def test_bad_env_value_names_the_variable():
    with pytest.raises(ConfigError) as info:
        load_config(env={"HOTLINE_AMI_PORT": "fifty"})
    assert info.value.key == "HOTLINE_AMI_PORT"
    assert "'fifty'" in str(info.value)


def test_unreadable_and_invalid_files_say_so(tmp_path: Path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("[ami\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(broken)


def test_queues_skills_and_priority_callers(tmp_path: Path):
    path = tmp_path / "acd.toml"
    path.write_text(
        """
[acd]
wrapup_s = 0
level_first = false
priority_callers = { "13800000000" = 5 }

[[lines]]
did = "12345"
line = "12345"
queue = "general"

[[lines]]
did = "123459"
line = "12345"
queue = "elderly"
priority = 3

[[queues]]
name = "general"
line = "12345"

[[queues]]
name = "elderly"
line = "12345"
skill = "elderly"
min_level = 3
overflow_queue = "general"
overflow_wait_s = 60

[[agents]]
extension = "1001"
name = "王芳"
skills = { elderly = 5 }
queues = ["general", "elderly"]

[[agents]]
extension = "1002"
name = "李强"
""",
        encoding="utf-8",
    )
    config = load_config(path)
    assert config.acd.wrapup_s == 0 and config.acd.level_first is False
    assert config.acd.priority_callers == {"13800000000": 5}
    assert [q.name for q in config.effective_queues] == ["general", "elderly"]
    assert config.effective_queues[1].overflow_queue == "general"
    assert config.agents[0].skills == {"elderly": 5}
    assert config.agent_queues(config.agents[0]) == ("general", "elderly")
    # No list of its own: every queue that needs no skill.
    assert config.agent_queues(config.agents[1]) == ("general",)
    assert config.lines[1].priority == 3


def test_default_queues_come_from_lines():
    config = load_config()
    assert [(q.name, q.line) for q in config.effective_queues] == [
        ("12345-general", "12345"),
        ("96181-general", "96181"),
    ]


@pytest.mark.parametrize(
    ("toml", "key"),
    [
        (
            "[[queues]]\nname='a'\nline='1'\n[[lines]]\ndid='1'\nline='1'\nqueue='nope'",
            "lines[0].queue",
        ),
        (
            "[[queues]]\nname='a'\nline='12345'\noverflow_queue='zz'\n"
            "[[lines]]\ndid='1'\nline='1'\nqueue='a'",
            "queues[0].overflow_queue",
        ),
        ("[[agents]]\nextension='1001'\nname='x'\nqueues=['nope']", "agents[0].queues[0]"),
        ("[[agents]]\nextension='1001'\nname='x'\nskills={a='high'}", "agents[0].skills.a"),
        ("[acd]\nlevel_first='maybe'", "acd.level_first"),
        ("[[agents]]\nextension='1001'\nname='  '", "agents[0].name"),
    ],
)
def test_cross_references_are_checked(tmp_path: Path, toml: str, key: str):
    path = tmp_path / "bad.toml"
    path.write_text(toml, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.key == key


def test_the_shipped_example_config_loads():
    example = Path(__file__).resolve().parents[2] / "config" / "hotline.example.toml"
    config = load_config(example)
    assert config.kpi.answer_target_s == 15.0 and config.kpi.rate_target == 0.90
    assert [a.extension for a in config.agents] == ["1001", "1002"]


def test_api_port_zero_means_any_free_port_but_ami_port_zero_is_refused(tmp_path):
    path = tmp_path / "hotline.toml"
    path.write_text("[api]\nport = 0\n")
    assert load_config(path).api.port == 0
    path.write_text("[ami]\nport = 0\n")
    with pytest.raises(ConfigError, match="ami.port"):
        load_config(path)
    path.write_text("[api]\nsession_ttl_s = -1\n")
    with pytest.raises(ConfigError, match="api.session_ttl_s"):
        load_config(path)


def test_control_section_is_checked_key_by_key():
    with pytest.raises(ConfigError, match="control.external_number_pattern"):
        load_config(overrides={"control.external_number_pattern": "1[3-9"})
    with pytest.raises(ConfigError, match="control.city_center_number"):
        load_config(overrides={"control.city_center_number": "12345;x"})
    with pytest.raises(ConfigError, match="control.transfer_ring_s"):
        load_config(overrides={"control.transfer_ring_s": 0})
    config = load_config(overrides={"control.transfer_ring_s": 5})
    assert config.section("control", ControlConfig).transfer_ring_s == 5


def test_dial_fault_keys_are_checked_by_name():
    with pytest.raises(ConfigError, match="acd.switch_guard_share"):
        load_config(overrides={"acd.switch_guard_share": 1.5})
    with pytest.raises(ConfigError, match="acd.switch_guard_min_agents"):
        load_config(overrides={"acd.switch_guard_min_agents": 0})
    with pytest.raises(ConfigError, match="acd.unavailable_backoff_max_s"):
        load_config(overrides={"acd.unavailable_backoff_s": 10, "acd.unavailable_backoff_max_s": 5})
    config = load_config(overrides={"acd.busy_skip_s": 2, "acd.switch_guard_window_s": 60})
    assert (config.acd.busy_skip_s, config.acd.switch_guard_window_s) == (2.0, 60.0)


def test_rtp_range_is_checked_and_a_range_too_small_for_the_agents_is_a_warning():
    with pytest.raises(ConfigError, match="rtp.end"):
        load_config(overrides={"rtp.start": 20000, "rtp.end": 10000})
    with pytest.raises(ConfigError, match="rtp.start"):
        load_config(overrides={"rtp.start": 80, "rtp.end": 10000})
    with pytest.raises(ConfigError, match="rtp.private_ports"):
        load_config(overrides={"rtp.private_ports": 2})
    # Four agents x 2 calls x 4 ports = 32: 10000..10399 is plenty.
    assert config_warnings(load_config(overrides={"rtp.start": 10000, "rtp.end": 10399})) == []
    small = load_config(overrides={"rtp.start": 10000, "rtp.end": 10019})
    (warning,) = config_warnings(small)
    assert "config key 'rtp'" in warning and "has 20 ports" in warning and "need 32" in warning


def test_private_stack_rtp_range_is_sized_for_the_agents():
    from dataclasses import replace

    from cti.config import AgentSpec

    config = load_config()
    assert config.private_rtp_ports == 400  # the floor for a handful of agents
    many = replace(config, agents=tuple(AgentSpec(str(2000 + n), "x") for n in range(200)))
    assert many.private_rtp_ports == 200 * 2 * 4
    assert load_config(overrides={"rtp.private_ports": 24}).private_rtp_ports == 24


@dataclass(frozen=True)
class SurveyConfig:
    question: str = "满意吗?"
    max_score: int = 5


def _check_survey(section: SurveyConfig) -> None:
    if not 1 <= section.max_score <= 10:
        raise ConfigError("survey.max_score", f"expected 1..10, got {section.max_score}")


SURVEY = Feature(
    name="survey",
    summary="a feature outside cti/, enabled by module:attribute",
    config=ConfigSection(
        "survey", SurveyConfig, _check_survey, env={"HOTLINE_SURVEY_MAX": "max_score"}
    ),
)


def test_a_feature_enabled_by_module_path_brings_its_section_and_env(tmp_path: Path) -> None:
    path = tmp_path / "engine.toml"
    path.write_text(
        'features = ["agents", "tests.unit.test_config:SURVEY"]\n'
        '[survey]\nquestion = "您对本次服务满意吗?"\nmax_score = 3\n',
        encoding="utf-8",
    )
    config = load_config(path)
    assert config.features == ("agents", "tests.unit.test_config:SURVEY")
    assert config.section("survey", SurveyConfig) == SurveyConfig("您对本次服务满意吗?", 3)
    from_env = load_config(path, env={"HOTLINE_SURVEY_MAX": "4"})
    assert from_env.section("survey", SurveyConfig).max_score == 4
    with pytest.raises(ConfigError, match="survey.max_score"):
        load_config(path, env={"HOTLINE_SURVEY_MAX": "11"})
    with pytest.raises(ConfigError, match="survey.colour"):
        load_config(path, overrides={"survey.colour": "red"})


def test_a_section_of_a_feature_not_enabled_is_an_unknown_key(tmp_path: Path) -> None:
    path = tmp_path / "engine.toml"
    path.write_text("[survey]\nmax_score = 3\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="'survey': unknown key"):
        load_config(path)


def test_an_unknown_feature_name_is_refused_naming_the_list_entry() -> None:
    with pytest.raises(ConfigError, match=r"features\[1\].*no feature 'recordings'"):
        load_config(overrides={"features": ["agents", "recordings"]})
