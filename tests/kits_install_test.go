package tests

// Issue #19: each kit installs offline the way its README says, into a
// fresh project outside the repository, with the distribution's own tools
// (pip into a venv, composer from a path repository, npm from a folder).

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// run runs name args in dir with extra environment and returns the combined
// output; a failure fails t unless wantFail.
func run(t *testing.T, dir string, env []string, wantFail bool, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if (err != nil) != wantFail {
		t.Fatalf("%s %s: err=%v (want failure: %v)\n%s", name, strings.Join(args, " "), err, wantFail, out)
	}
	return string(out)
}

// copyTree copies the regular files under src to dst (the kit's sources,
// so an install never writes build files into the repository).
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.Walk(src, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if fi.IsDir() {
			if fi.Name() == "build" || strings.HasSuffix(fi.Name(), ".egg-info") || fi.Name() == "__pycache__" || fi.Name() == "node_modules" {
				return filepath.SkipDir
			}
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, fi.Mode().Perm())
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestKitsInstallOffline(t *testing.T) {
	t.Run("django_pip", func(t *testing.T) {
		python := "/usr/bin/python3"
		if _, err := os.Stat(python); err != nil {
			missing(t, python+" not found: tests/apps/setup.sh installs python3 and python3-django")
		}
		dir := t.TempDir()
		src := filepath.Join(dir, "src")
		copyTree(t, integrationsDir(t, "django"), src)
		venv := filepath.Join(dir, "venv")
		run(t, dir, nil, false, python, "-m", "venv", "--system-site-packages", venv)
		// --no-index: nothing from PyPI; --no-build-isolation: the installed setuptools.
		run(t, dir, []string{"PIP_CACHE_DIR=" + filepath.Join(dir, "cache")}, false,
			filepath.Join(venv, "bin", "pip"), "install", "--no-index", "--no-build-isolation", src)
		script := `
import django, idlegate_django, sys
from django.conf import settings
settings.configure(
    INSTALLED_APPS=["django.contrib.auth", "django.contrib.contenttypes", "idlegate_django"],
    DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
    ROOT_URLCONF="idlegate_django.urls", IDLEGATE_WEBHOOK_SECRET="whsec_short")
django.setup()
print("module", idlegate_django.__file__)
from django.core.management import call_command
call_command("migrate", verbosity=0)
call_command("idlegate_check")
`
		out := run(t, dir, nil, true, filepath.Join(venv, "bin", "python"), "-c", script)
		if !strings.Contains(out, "module "+venv) {
			t.Errorf("idlegate_django was not imported from the venv:\n%s", out)
		}
		for _, want := range []string{"FAIL  secret", "is malformed", "ok    route", "FAIL  header", "ok    database"} {
			if !strings.Contains(out, want) {
				t.Errorf("idlegate_check output lacks %q:\n%s", want, out)
			}
		}
	})

	t.Run("laravel_composer", func(t *testing.T) {
		composer := needBinary(t, "composer")
		dir := t.TempDir()
		manifest := map[string]any{
			"name":         "example/app",
			"repositories": []any{map[string]any{"type": "path", "url": integrationsDir(t, "laravel")}, map[string]any{"packagist.org": false}},
			"require":      map[string]string{"idlegate/laravel": "*@dev"},
			"provide": map[string]string{"illuminate/auth": "8.83.26", "illuminate/console": "8.83.26", "illuminate/database": "8.83.26",
				"illuminate/http": "8.83.26", "illuminate/routing": "8.83.26", "illuminate/support": "8.83.26"},
			"config": map[string]any{"lock": false},
		}
		b, _ := json.MarshalIndent(manifest, "", "  ")
		if err := os.WriteFile(filepath.Join(dir, "composer.json"), b, 0o644); err != nil {
			t.Fatal(err)
		}
		run(t, dir, []string{"COMPOSER_HOME=" + filepath.Join(dir, "home"), "COMPOSER_ALLOW_SUPERUSER=1", "COMPOSER_NO_INTERACTION=1"}, false,
			composer, "install", "--no-progress")
		raw, err := os.ReadFile(filepath.Join(dir, "vendor", "composer", "installed.json"))
		if err != nil {
			t.Fatal(err)
		}
		var installed struct {
			Packages []struct {
				Name  string `json:"name"`
				Extra struct {
					Laravel struct {
						Providers []string `json:"providers"`
					} `json:"laravel"`
				} `json:"extra"`
			} `json:"packages"`
		}
		if err := json.Unmarshal(raw, &installed); err != nil {
			t.Fatal(err)
		}
		if len(installed.Packages) != 1 || installed.Packages[0].Name != "idlegate/laravel" ||
			strings.Join(installed.Packages[0].Extra.Laravel.Providers, ",") != `Idlegate\Laravel\IdlegateServiceProvider` {
			t.Fatalf("installed.json (what Laravel's package discovery reads): %s", raw)
		}
		// Composer's autoloader finds the kit's classes.
		out := run(t, dir, nil, false, "php", "-r",
			`require "vendor/autoload.php"; echo Idlegate\Laravel\Signature::sign(str_repeat("k", 24), "msg_1", 1, "{}"), "\n";`)
		if !strings.HasPrefix(out, "v1,") {
			t.Errorf("kit class not autoloaded: %s", out)
		}
	})

	t.Run("express_npm", func(t *testing.T) {
		npm := needBinary(t, "npm")
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "package.json"), []byte(`{"name":"example-app","version":"1.0.0","private":true}`), 0o644); err != nil {
			t.Fatal(err)
		}
		env := []string{"npm_config_cache=" + filepath.Join(dir, "cache"), "npm_config_update_notifier=false"}
		run(t, dir, env, false, npm, "install", "--offline", "--no-audit", "--no-fund", integrationsDir(t, "express"))
		out := run(t, dir, []string{"IDLEGATE_WEBHOOK_SECRET=whsec_short"}, true,
			filepath.Join(dir, "node_modules", ".bin", "idlegate-express-check"))
		if !strings.Contains(out, "FAIL  secret") || !strings.Contains(out, "is malformed") {
			t.Errorf("idlegate-express-check with a malformed secret:\n%s", out)
		}
		out = run(t, dir, nil, false, "node", "-e", `const k = require("idlegate-express"); console.log(typeof k.webhook, typeof k.userHeader, typeof k.Events)`)
		if strings.TrimSpace(out) != "function function function" {
			t.Errorf("require('idlegate-express'): %s", out)
		}
	})
}
