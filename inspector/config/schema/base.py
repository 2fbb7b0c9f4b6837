"""The conventions every config model follows (unknown fields refused, frozen), the reusable field
types and patterns, and :class:`FieldIssues` for checks that span several fields."""

from __future__ import annotations

from typing import Annotated, Union

from pydantic import AfterValidator, BaseModel, ConfigDict, Field


SCHEMA_VERSION = 1

SLUG_PATTERN = r"^[a-z0-9][a-z0-9_-]*$"
REGISTRY_PATTERN = r"^[a-z0-9][a-z0-9_.-]*(@[0-9A-Za-z_.-]+)?$"
SHA256_PATTERN = r"^[0-9a-fA-F]{64}$"
ENV_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
MODEL_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"

# Plain-words explanation of each pattern, used by the loader's error messages.
PATTERN_HINTS: dict[str, str] = {
    SLUG_PATTERN: "a lowercase id (a-z, 0-9, '_' or '-', starting with a letter or digit)",
    REGISTRY_PATTERN: "'name' or 'name@version' (lowercase name; no version means the production model)",
    SHA256_PATTERN: "a sha256 digest: 64 hexadecimal characters",
    ENV_NAME_PATTERN: "the NAME of an environment variable (letters, digits, '_'), never the secret itself",
    MODEL_NAME_PATTERN: "a model name (letters, digits, '_', '.' or '-')",
}

# Placeholders an MQTT topic template may use; checked at load time so a typo fails early.
MQTT_TOPIC_FIELDS = ("station", "source", "camera", "zone", "lot", "wafer", "unit", "verdict")

Loc = tuple[Union[str, int], ...]


class FieldIssues(ValueError):
    """Several problems found by one model validator, each with a path relative to the model."""

    def __init__(self, issues: list[tuple[Loc, str]]):
        self.issues = list(issues)
        super().__init__("; ".join(f"{_dotted(loc)}: {msg}" if loc else msg for loc, msg in self.issues))


def _dotted(loc: Loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def raise_if(issues: list[tuple[Loc, str]]) -> None:
    if issues:
        raise FieldIssues(issues)


class ConfigModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --------------------------------------------------------------------------------------------
# Reusable field types
# --------------------------------------------------------------------------------------------

Slug = Annotated[str, Field(pattern=SLUG_PATTERN, max_length=64)]
Fraction = Annotated[float, Field(ge=0.0, le=1.0)]
PathText = Annotated[str, Field(min_length=1)]
EnvName = Annotated[str, Field(pattern=ENV_NAME_PATTERN)]


def _multiple_of_32(v: int) -> int:
    if v % 32:
        raise ValueError(f"expected a multiple of 32, got {v}")
    return v


Size32 = Annotated[int, Field(ge=32, le=4096), AfterValidator(_multiple_of_32)]

Point = Annotated[tuple[float, float], Field(description="One [x, y] vertex in image pixels.")]


def _check_polygon(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    if len(points) < 3:
        raise ValueError(f"a polygon needs at least 3 [x, y] points, got {len(points)}")
    # Shoelace area: a zero-area polygon (all points on a line) contains nothing, surely a mistake.
    area2 = sum(x1 * y2 - x2 * y1 for (x1, y1), (x2, y2) in zip(points, points[1:] + points[:1]))
    if area2 == 0:
        raise ValueError("polygon has zero area (its points lie on one line)")
    return points


Polygon = Annotated[list[Point], AfterValidator(_check_polygon)]


def unique(values: list, what: str) -> list:
    seen: set = set()
    for v in values:
        if v in seen:
            raise ValueError(f"duplicate {what} {v!r}; each must appear once")
        seen.add(v)
    return values


def unique_list(what: str) -> AfterValidator:
    return AfterValidator(lambda values: unique(values, what))
