"""ValidatingAdmissionPolicies for the rules a CRD's own CEL cannot express: the one source of
admission/*.yaml and of the chart's templates/admissionpolicy.yaml.

A quantity is untyped in the CRD schema (a number or a string, see `common.Quantity`), and CRD
validation rules cannot read untyped values. A ValidatingAdmissionPolicy sees them as `dyn`:
`string()` turns a number (`cpu: 0.5`) into the quantity grammar ("0.5", "1e+21") and leaves a
string as it is, and Kubernetes' quantity library compares the two. So a request over its limit is
refused at admission, naming the field; the operator still checks it too (InvalidSpec).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .crds import GROUP, MODEL_DEPLOYMENT, TRAINING_JOB, Kind

JsonDict = dict[str, Any]

ROLES = ("chief", "worker", "ps", "evaluator")


@dataclass(frozen=True)
class ResourcesField:
    """One `resources` in a kind: its variable name, field path and CEL optional chain."""

    variable: str
    path: str
    chain: str


@dataclass(frozen=True)
class Policy:
    kind: Kind
    fields: tuple[ResourcesField, ...]

    def name(self, prefix: str) -> str:
        return f"{prefix}-{self.kind.plural}-requests-within-limits"


POLICIES = (
    Policy(
        MODEL_DEPLOYMENT,
        (ResourcesField("server", "spec.server.resources", "object.spec.?server.?resources"),),
    ),
    Policy(
        TRAINING_JOB,
        tuple(
            ResourcesField(
                role,
                f"spec.replicaSpecs.{role}.resources",
                f"object.spec.?replicaSpecs.?{role}.?resources",
            )
            for role in ROLES
        ),
    ),
)


def _quantity(value: str) -> str:
    # A number becomes its decimal or exponent form, a string stays itself.
    return f"quantity(string({value}))"


def _variables(field: ResourcesField) -> list[JsonDict]:
    res = f"variables.{field.variable}.value()"
    request, limit = f"{res}.requests[k]", f"{res}.limits[k]"
    over = (
        f"variables.{field.variable}.hasValue() && has({res}.requests) && has({res}.limits) ? "
        f"{res}.requests.filter(k, k in {res}.limits"
        f" && isQuantity(string({request})) && isQuantity(string({limit}))"
        f" && {_quantity(request)}.compareTo({_quantity(limit)}) > 0) : []"
    )
    return [
        {"name": field.variable, "expression": field.chain},
        {"name": f"{field.variable}Over", "expression": over},
    ]


def _validation(field: ResourcesField) -> JsonDict:
    res = f"variables.{field.variable}.value()"
    first = f"variables.{field.variable}Over[0]"
    message = (
        f"'{field.path}.requests.' + {first} + ' (' + string({res}.requests[{first}]) + ') "
        f"exceeds {field.path}.limits.' + {first} + ' (' + string({res}.limits[{first}]) + ')'"
    )
    return {
        "expression": f"size(variables.{field.variable}Over) == 0",
        "messageExpression": message,
        "message": f"a request in {field.path}.requests exceeds its limit",
        "reason": "Invalid",
    }


def build_policy(policy: Policy, prefix: str) -> JsonDict:
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": policy.name(prefix)},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {
                "resourceRules": [
                    {
                        "apiGroups": [GROUP],
                        "apiVersions": ["*"],
                        "operations": ["CREATE", "UPDATE"],
                        "resources": [policy.kind.plural],
                    }
                ]
            },
            # Only a new or changed spec: an object stored before the policy can still have its
            # finalizers and labels changed (and be deleted).
            "matchConditions": [
                {
                    "name": "spec-is-new-or-changed",
                    "expression": "oldObject == null || object.spec != oldObject.spec",
                }
            ],
            "variables": [v for field in policy.fields for v in _variables(field)],
            "validations": [_validation(field) for field in policy.fields],
        },
    }


def build_binding(policy: Policy, prefix: str) -> JsonDict:
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": policy.name(prefix)},
        "spec": {"policyName": policy.name(prefix), "validationActions": ["Deny"]},
    }


def build_all(prefix: str) -> list[JsonDict]:
    """Each policy followed by its binding (without one a policy does nothing)."""
    return [doc for p in POLICIES for doc in (build_policy(p, prefix), build_binding(p, prefix))]
