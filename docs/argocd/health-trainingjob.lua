-- Argo CD health for modelship.dev/TrainingJob
-- (argocd-cm: resource.customizations.health.modelship.dev_TrainingJob).
-- Suspended while runPolicy.suspend holds it (for example until Kueue admits it), Progressing while
-- it is pending or trains, Healthy once it succeeded, Degraded once it failed.
-- Uses only Lua's base library, which every Argo CD version opens.
local hs = {status = "Progressing", message = "Waiting for the operator to report status"}
if obj.status == nil or obj.status.observedGeneration == nil then
  return hs
end
if obj.metadata.generation ~= nil and obj.status.observedGeneration ~= obj.metadata.generation then
  hs.message = "Waiting for the operator to observe generation " .. obj.metadata.generation
  return hs
end
local conditions = {}
for _, c in ipairs(obj.status.conditions or {}) do
  conditions[c.type] = c
end
local stalled, ready, reconciling = conditions["Stalled"], conditions["Ready"], conditions["Reconciling"]
local state = obj.status.state
if (stalled ~= nil and stalled.status == "True") or state == "Failed" then
  hs.status = "Degraded"
  if stalled ~= nil and stalled.status == "True" then
    hs.message = (stalled.reason or "Failed") .. ": " .. (stalled.message or "")
  else
    hs.message = "Failed"
  end
elseif state == "Succeeded" or (ready ~= nil and ready.status == "True") then
  hs.status = "Healthy"
  hs.message = "Succeeded"
  if obj.status.exportedModelUri ~= nil then
    hs.message = "Succeeded: model exported to " .. obj.status.exportedModelUri
  end
elseif state == "Suspended" then
  hs.status = "Suspended"
  hs.message = (ready and ready.message) or "runPolicy.suspend is true"
elseif reconciling ~= nil and reconciling.status == "True" then
  hs.message = (state or reconciling.reason or "Reconciling") .. ": " .. (reconciling.message or "")
elseif state ~= nil then
  hs.message = state
end
return hs
