"""Suite-wide settings. One intra-op thread: on a 2-core machine the suite's many small
tensor ops run faster without thread hand-offs (measured ~30x on finite-difference loops
under load), and results stay bit-for-bit reproducible."""
import os

import pytest
import torch

os.environ.setdefault("LOSSLAB_STORE", os.path.join(os.environ.get("PYTEST_TMPDIR", "/tmp"), "losslab-test-store"))


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)



def invoke_cli(capsys, *args, app=None):
    """Run the CLI's real entry point (run_app: one-line errors, exit codes) in-process and
    return (exit code, stdout, stderr). Test modules import it: ``from conftest import invoke_cli``."""
    import sys

    from losslab.cli import app as losslab_app
    from losslab.cli._common import run_app

    argv, sys.argv = sys.argv, ["losslab", *args]
    try:
        code = run_app(app or losslab_app)
    except SystemExit as e:
        code = e.code
    finally:
        sys.argv = argv
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def assert_same_summary(a: dict, b: dict, rel: float = 1e-12) -> None:
    """Two runs' summaries with the same seed: the same keys and values, floats to ``rel`` (BLAS
    reductions may round the last bit differently from call to call: alignment-dependent kernels)."""
    import math

    assert a.keys() == b.keys()
    for k in a:
        x, y = a[k], b[k]
        if isinstance(x, float) and isinstance(y, float):
            assert (math.isnan(x) and math.isnan(y)) or x == pytest.approx(y, rel=rel, abs=1e-15), (k, x, y)
        else:
            assert x == y, (k, x, y)
