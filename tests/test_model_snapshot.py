"""Every example and test workflow compiles to exactly the resources recorded in
tests/snapshots/models.json (names, ARNs, policies, task definitions, creation order). A
change meant to alter what is deployed re-records it (`python tests/model_snapshot.py --write`)
and shows the difference in its diff; a change of shape alone leaves it as it is."""
import json

import model_snapshot


def test_every_workflow_compiles_to_the_recorded_resources(aws_env):
    recorded = json.loads(model_snapshot.SNAPSHOT.read_text())
    current = json.loads(json.dumps(model_snapshot.compile_all(), sort_keys=True))
    assert sorted(current) == sorted(recorded)
    for label in recorded:
        assert current[label] == recorded[label], f"{label} compiles differently: run tests/model_snapshot.py"
