"""KubeRay's ray.io/v1 RayJob and RayService as JSON Schema, for tests/test_cluster_manifests.py.

KubeRay's CRDs ship only in its Git repository and Helm chart, neither of which installs offline
here. This schema is written from KubeRay's v1 API types (ray-operator/apis/ray/v1:
raycluster_types.go, rayjob_types.go, rayservice_types.go, KubeRay 1.5-1.6): every field of the
specs the manifests can use, their types, enums and required keys, unknown keys refused as the API
server's structural-schema pruning would drop them silently (a typo then does nothing, which is
worse than an error). Kubernetes' own objects inside (pod templates, services, resources, env)
are checked against Kubernetes' strict JSON Schemas from the `kubernetes-validate` wheel, so a
misspelt container key fails too. Fields a manifest here does not use and that take large
sub-objects (GCS fault tolerance, network policy, history server) are typed as objects only.
"""

from __future__ import annotations

import json
from pathlib import Path

K8S_VERSION = "1.37.0"
K8S = "https://kubernetes.io/api/_definitions.json#/$defs/"


def k8s(name: str) -> dict:
    return {"$ref": K8S + name}


def strict(properties: dict, required: tuple[str, ...] = ()) -> dict:
    return {"type": "object", "properties": properties, "required": list(required), "additionalProperties": False}


INT32 = {"type": "integer", "minimum": -(2**31), "maximum": 2**31 - 1}
COUNT = {"type": "integer", "minimum": 0, "maximum": 2**31 - 1}
STRMAP = {"type": "object", "additionalProperties": {"type": "string"}}
STR, BOOL, OBJ, NUM = {"type": "string"}, {"type": "boolean"}, {"type": "object"}, {"type": "number"}
MANAGED_BY = {"enum": ["ray.io/kuberay-operator", "kueue.x-k8s.io/multikueue"]}
PULL = {"enum": ["Always", "Never", "IfNotPresent"]}


def array(item: dict) -> dict:
    return {"type": "array", "items": item}


AUTOSCALER = strict({
    "resources": k8s("io.k8s.api.core.v1.ResourceRequirements"), "image": STR, "imagePullPolicy": PULL,
    "securityContext": k8s("io.k8s.api.core.v1.SecurityContext"), "idleTimeoutSeconds": INT32,
    "upscalingMode": {"enum": ["Default", "Aggressive", "Conservative"]}, "version": {"enum": ["v1", "v2"]},
    "env": array(k8s("io.k8s.api.core.v1.EnvVar")), "envFrom": array(k8s("io.k8s.api.core.v1.EnvFromSource")),
    "volumeMounts": array(k8s("io.k8s.api.core.v1.VolumeMount")), "command": array(STR), "args": array(STR),
})
AUTH = strict({"enableK8sTokenAuth": BOOL, "secretName": STR, "mode": {"enum": ["disabled", "token"]}})
TEMPLATE = k8s("io.k8s.api.core.v1.PodTemplateSpec")
HEAD = strict({
    "template": TEMPLATE, "headService": k8s("io.k8s.api.core.v1.Service"), "enableIngress": BOOL,
    "ingressOptions": strict({"host": STR, "path": STR, "pathType": {"enum": ["Exact", "Prefix", "ImplementationSpecific"]},
                              "tls": array(k8s("io.k8s.api.networking.v1.IngressTLS"))}),
    "resources": STRMAP, "labels": STRMAP, "rayStartParams": STRMAP,
    "serviceType": {"enum": ["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"]},
}, ("template",))
WORKER = strict({
    "suspend": BOOL, "groupName": STR, "replicas": COUNT, "minReplicas": COUNT, "maxReplicas": COUNT,
    "idleTimeoutSeconds": INT32, "priority": INT32, "resources": STRMAP, "labels": STRMAP, "rayStartParams": STRMAP,
    "template": TEMPLATE, "scaleStrategy": strict({"workersToDelete": array(STR)}),
    "numOfHosts": {"type": "integer", "minimum": 1, "maximum": 2**31 - 1},
}, ("groupName", "minReplicas", "maxReplicas", "template"))
CLUSTER = strict({
    "upgradeStrategy": strict({"type": {"enum": ["Recreate", "None"]}}), "authOptions": AUTH, "suspend": BOOL,
    "managedBy": MANAGED_BY, "autoscalerOptions": AUTOSCALER, "headServiceAnnotations": STRMAP,
    "enableInTreeAutoscaling": BOOL, "gcsFaultToleranceOptions": OBJ, "historyServerOptions": OBJ,
    "networkPolicy": OBJ, "tlsOptions": strict({"enabled": BOOL}), "headGroupSpec": HEAD, "rayVersion": STR,
    "workerGroupSpecs": array(WORKER),
}, ("headGroupSpec",))
JOB = strict({
    "activeDeadlineSeconds": {"type": "integer", "minimum": 1, "maximum": 2**31 - 1}, "backoffLimit": COUNT,
    "rayClusterSpec": CLUSTER, "submitterPodTemplate": TEMPLATE, "metadata": STRMAP, "clusterSelector": STRMAP,
    "submitterConfig": strict({"backoffLimit": COUNT}), "managedBy": MANAGED_BY, "deletionStrategy": OBJ,
    "entrypoint": STR, "runtimeEnvYAML": STR, "jobId": STR,
    "submissionMode": {"enum": ["K8sJobMode", "HTTPMode", "InteractiveMode", "SidecarMode"]},
    "entrypointResources": STR, "entrypointNumCpus": NUM, "entrypointNumGpus": NUM,
    "ttlSecondsAfterFinished": COUNT, "shutdownAfterJobFinishes": BOOL, "suspend": BOOL, "schedule": STR,
})
SERVICE = strict({
    "rayClusterDeletionDelaySeconds": COUNT, "serviceUnhealthySecondThreshold": INT32,
    "deploymentUnhealthySecondThreshold": INT32, "serveService": k8s("io.k8s.api.core.v1.Service"),
    "upgradeStrategy": strict({"type": {"enum": ["NewClusterWithIncrementalUpgrade", "NewCluster", "None"]},
                               "clusterUpgradeOptions": OBJ}),
    "serveConfigV2": STR, "rayClusterConfig": CLUSTER, "excludeHeadPodFromServeSvc": BOOL,
}, ("rayClusterConfig",))


def resource(kind: str, spec: dict) -> dict:
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **strict({
        "apiVersion": {"const": "ray.io/v1"}, "kind": {"const": kind},
        "metadata": k8s("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"), "spec": spec, "status": OBJ,
    }, ("apiVersion", "kind", "metadata", "spec"))}


SCHEMAS = {"RayJob": resource("RayJob", JOB), "RayService": resource("RayService", SERVICE)}


def validator(kind: str):
    """A Draft 2020-12 validator for a ray.io/v1 `kind`, Kubernetes' strict definitions registered."""
    import jsonschema
    import kubernetes_validate
    from referencing import Registry, Resource

    base = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema" / f"v{K8S_VERSION}-local-strict"
    definitions = json.loads((base / "_definitions.json").read_text())
    registry = Registry().with_resource(definitions["$id"], Resource.from_contents(definitions))
    return jsonschema.Draft202012Validator(SCHEMAS[kind], registry=registry)
