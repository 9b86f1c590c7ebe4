"""A release's env on the kubernetes target, through the real client against the API
server double: `secret://NAME` stays a secretKeyRef and NAME follows the same pattern
as on the local target; an env the request model refuses never reaches a pod spec."""

from __future__ import annotations

import pytest

from pipeline.errors import PermanentTargetError
from pipeline.models import Slot
from pipeline.targets.kubernetes import KubernetesTarget
from tests.helpers.k8s_double import KubeDouble
from tests.helpers.k8s_fixtures import PRODUCTION, SERVICE, STAGING, target_on


@pytest.fixture
def target(kube_double: KubeDouble, tmp_path) -> KubernetesTarget:
    return target_on(kube_double, tmp_path)


def canary_env(kube_double: KubeDouble) -> list[dict]:
    return kube_double.get("deployments", PRODUCTION, f"{SERVICE}-canary")["spec"]["template"]["spec"]["containers"][0]["env"]


async def test_a_secret_reference_becomes_a_key_of_the_services_secret(kube_double, target):
    assert await target.deploy(SERVICE, Slot.CANARY, "2.0.0", {"DB_PASSWORD": "secret://DB_PASSWORD"})
    assert canary_env(kube_double)[-1] == {
        "name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": f"{SERVICE}-secrets", "key": "DB_PASSWORD"}},
    }


@pytest.mark.parametrize(("env", "named"), [
    ({"DB_PASSWORD": "secret://db-password"}, "DB_PASSWORD: secret reference 'secret://db-password'"),
    ({"X": "secret://../other-secret"}, "X: secret reference"),
    ({"LD_PRELOAD": "/tmp/x.so"}, "LD_PRELOAD may not be set"),
    ({"KUBERNETES_SERVICE_HOST": "10.9.9.9"}, "KUBERNETES_SERVICE_HOST may not be set"),
    ({"BIG": "x" * 5000}, "BIG: value is 5000 characters"),
])
@pytest.mark.parametrize("slot", [Slot.STAGING, Slot.CANARY])
async def test_an_env_the_request_model_refuses_is_never_written(kube_double, target, slot, env, named):
    with pytest.raises(PermanentTargetError, match=f"refuses the release's env: {named}"):
        await target.deploy(SERVICE, slot, "2.0.0", env)
    assert kube_double.writes("deployments") == []
    assert kube_double.get("deployments", PRODUCTION, f"{SERVICE}-canary") is None
    assert "LD_PRELOAD" not in str(kube_double.get("deployments", STAGING, SERVICE))
