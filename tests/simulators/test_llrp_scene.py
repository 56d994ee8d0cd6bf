"""Scene files: strict validation with file/line/key errors, generation, documented schema."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from simulators.scene import (
    ConfigError,
    Scene,
    generate_scene,
    load_scene,
    scene_from_tags,
    scene_json_schema,
)

DOCS = Path(__file__).resolve().parents[2] / "docs" / "scene.md"

YAML_SCENE = """\
# two antennas, one stray read
reader:
  antennas: 2
  rounds_per_second: 20
rssi_sd: 1.5
seed: 7
tags:
  - {epc: 3034257BF7194E4000003039, antenna: 1, rssi: -52.0, read_prob: 0.98}
  - epc: 3034257bf7194e4000003039
    antenna: 2
    rssi: -71
    read_prob: 0.3
"""


def test_yaml_scene_loads_and_normalises(tmp_path: Path) -> None:
    path = tmp_path / "scene.yaml"
    path.write_text(YAML_SCENE)
    scene = load_scene(path)
    assert scene.reader.antennas == 2
    assert scene.reader.rounds_per_second == 20
    assert scene.rssi_sd == 1.5
    assert [t.epc for t in scene.tags] == ["3034257bf7194e4000003039"] * 2
    assert scene.best_antenna() == {"3034257bf7194e4000003039": 1}


def test_json_scene_loads(tmp_path: Path) -> None:
    path = tmp_path / "scene.json"
    doc = {"reader": {"antennas": 4}, "tags": [{"epc": "3034257bf7194e4000000001", "antenna": 3}]}
    path.write_text(json.dumps(doc, indent=1))
    scene = load_scene(path)
    assert scene.tags[0].antenna == 3
    assert scene.tags[0].read_prob == 1.0


@pytest.mark.parametrize(
    ("text", "line", "key", "why"),
    [
        (YAML_SCENE.replace("rssi_sd: 1.5", "rssi_sdd: 1.5"), 5, "rssi_sdd", "unknown key"),
        (YAML_SCENE.replace("read_prob: 0.3", "read_prob: 1.3"), 12, "tags[1].read_prob", "1"),
        (YAML_SCENE.replace("antenna: 2\n", "antenna: 3\n"), 7, "tags", "exceeds reader.antennas"),
        (YAML_SCENE.replace("rounds_per_second: 20", "rounds: 20"), 4, "reader.rounds", "unknown"),
        (YAML_SCENE.replace("3034257BF7194E4000003039", "XYZ"), 8, "tags[0].epc", "is not an EPC"),
    ],
)
def test_errors_name_file_line_and_key(
    tmp_path: Path, text: str, line: int, key: str, why: str
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_scene(path)
    message = str(info.value)
    assert f"{path}:{line}: {key}" in message
    assert why in message


def test_json_errors_have_lines_too(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text(
        '{\n  "reader": {"antennas": 2},\n  "tags": [\n    {"epc": "3034", "antena": 1}\n  ]\n}\n'
    )
    with pytest.raises(ConfigError, match=r"bad.json:4: tags\[0\]\.antena: unknown key"):
        load_scene(path)


def test_duplicate_sighting_is_rejected() -> None:
    tag = {"epc": "3034257bf7194e4000000001", "antenna": 1}
    with pytest.raises(ValueError, match="listed twice"):
        Scene.model_validate({"tags": [tag, tag]})


def test_generated_scene_has_strays_weaker_than_the_home_antenna() -> None:
    scene = generate_scene(1500, antennas=4, seed=11)
    assert len(scene.epcs) == 1500
    assert 1500 < len(scene.tags) < 1500 * 1.4
    home = scene.best_antenna()
    for index, epc in enumerate(sorted(scene.epcs)):
        assert home[epc] == index % 4 + 1
    assert scene.tags[0].epc == "3034257bf7194e4000000001"
    assert generate_scene(1500, antennas=4, seed=11) == scene


def test_scene_from_tags() -> None:
    scene = scene_from_tags([("3034257bf7194e4000000001", 2, -60.0)], antennas=2, name="r9")
    assert scene.reader.name == "r9"
    assert scene.tags[0].rssi == -60.0


def test_docs_embed_the_current_json_schema() -> None:
    text = DOCS.read_text()
    match = re.search(
        r"<!-- schema:begin -->\n```json\n(.*?)\n```\n<!-- schema:end -->", text, re.S
    )
    assert match, "docs/scene.md lacks the generated schema block"
    assert json.loads(match.group(1)) == scene_json_schema()
