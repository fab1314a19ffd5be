"""A pinned wheel from PyPI, checked against its sha256, opened as a zip:
where the catalogs the build embeds come from (scripts/prices.py,
scripts/gen-model-limits.py). Nothing from the wheel is imported or run."""

import contextlib
import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile


@contextlib.contextmanager
def pinned_wheel(package, version, sha256, wheel=None, pip_args=()):
    """Opens `wheel`, or `package==version` downloaded (binary only, no
    dependencies); exits unless its sha256 is `sha256`."""
    with tempfile.TemporaryDirectory() as tmp:
        if wheel is None:
            subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
                            *pip_args, "--dest", tmp, f"{package}=={version}"], check=True)
            prefix = package.replace("-", "_") + "-"
            wheels = [f for f in os.listdir(tmp) if f.startswith(prefix) and f.endswith(".whl")]
            if len(wheels) != 1:
                raise SystemExit(f"pip did not leave one {package} wheel in {tmp}: {wheels}")
            wheel = os.path.join(tmp, wheels[0])
        with open(wheel, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
        if digest != sha256:
            raise SystemExit(f"{wheel}: sha256 {digest}, expected {sha256} ({package} {version})")
        with zipfile.ZipFile(wheel) as z:
            yield z
