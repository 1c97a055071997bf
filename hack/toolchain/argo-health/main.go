// argo-health runs an Argo CD resource health script (resource.customizations.health.<group_Kind>)
// against one object, the way Argo CD does: gopher-lua with only the package, base and table
// libraries open, the object as the global `obj`, and the table the script returns read as
// {status, message}. Prints that as JSON; exits 1 when the script fails or returns a status
// Argo CD does not know.
//
// Usage: argo-health SCRIPT.lua < object.json
package main

import (
	"encoding/json"
	"fmt"
	"os"

	lua "github.com/yuin/gopher-lua"
)

// Argo CD's health.HealthStatusCode values.
var known = map[string]bool{
	"Unknown": true, "Progressing": true, "Healthy": true, "Suspended": true, "Degraded": true, "Missing": true,
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: argo-health SCRIPT.lua < object.json")
		os.Exit(2)
	}
	script, err := os.ReadFile(os.Args[1])
	if err != nil {
		fail(err)
	}
	var obj map[string]interface{}
	if err := json.NewDecoder(os.Stdin).Decode(&obj); err != nil {
		fail(fmt.Errorf("reading the object: %w", err))
	}
	l := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer l.Close()
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{{lua.LoadLibName, lua.OpenPackage}, {lua.BaseLibName, lua.OpenBase}, {lua.TabLibName, lua.OpenTable}} {
		l.Push(l.NewFunction(lib.open))
		l.Push(lua.LString(lib.name))
		l.Call(1, 0)
	}
	l.SetGlobal("obj", decode(l, obj))
	if err := l.DoString(string(script)); err != nil {
		fail(err)
	}
	table, ok := l.Get(-1).(*lua.LTable)
	if !ok {
		fail(fmt.Errorf("the script returned %s, not a table", l.Get(-1).Type()))
	}
	out := map[string]string{"status": "", "message": ""}
	for key := range out {
		if v := table.RawGetString(key); v != lua.LNil {
			out[key] = v.String()
		}
	}
	if !known[out["status"]] {
		fail(fmt.Errorf("status %q is not an Argo CD health status", out["status"]))
	}
	_ = json.NewEncoder(os.Stdout).Encode(out)
}

// decode turns decoded JSON into Lua values as Argo CD does: objects and arrays become tables
// (arrays 1-based), numbers LNumber, null nil.
func decode(l *lua.LState, value interface{}) lua.LValue {
	switch v := value.(type) {
	case map[string]interface{}:
		t := l.NewTable()
		for key, item := range v {
			t.RawSetString(key, decode(l, item))
		}
		return t
	case []interface{}:
		t := l.NewTable()
		for _, item := range v {
			t.Append(decode(l, item))
		}
		return t
	case string:
		return lua.LString(v)
	case float64:
		return lua.LNumber(v)
	case bool:
		return lua.LBool(v)
	default:
		return lua.LNil
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "argo-health:", err)
	os.Exit(1)
}
