"""`python -m symfocal.info`: what this installation of symfocal is and can do."""

from __future__ import annotations

import torch

from . import _build, _ops
from .version import __version__


def report() -> dict:
    build = _ops.build_info()
    info = {
        "symfocal": (_build.read_info() or {}).get("symfocal", __version__),  # with the wheel's +cu/+cpu
        "torch": torch.__version__,
        "torch CUDA": torch.version.cuda or "none (CPU build of torch)",
        "extension loaded": build["loaded"],
    }
    if build["loaded"]:
        info.update({
            "built against torch": build["built_with_torch"],
            "built with CUDA": build["cuda_version"] or "no (CPU-only build)",
            "CUDA architectures compiled in": build["cuda_archs"] or "-",
            "CPU kernels": f"yes ({build['cpu_isa']})",
            "CUDA kernels": "yes" if build["with_cuda"] else "no",
        })
    else:
        info["why not"] = build["error"]
    info["GPU"] = (", ".join(f"{torch.cuda.get_device_name(i)} (sm_{''.join(map(str, torch.cuda.get_device_capability(i)))})"
                             for i in range(torch.cuda.device_count())) if torch.cuda.is_available() else "none")
    info["CPU threads"] = torch.get_num_threads()
    return info


def main() -> None:
    for key, value in report().items():
        print(f"{key:32} {value}")


if __name__ == "__main__":
    main()
