"""``python -m pytest_agentops.scenario_file``: regenerate the shipped JSON Schema of scenario files."""

from pytest_agentops.scenario_file.schema import SCHEMA_PATH, schema_text

if __name__ == "__main__":
    SCHEMA_PATH.write_text(schema_text(), encoding="utf-8")
    print(f"wrote {SCHEMA_PATH}")
