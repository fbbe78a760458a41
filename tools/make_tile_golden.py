#!/usr/bin/env python3
"""Golden data for seamless tiles: the UNet with circular padding.

For three golden forward models (tests/data/golden/forward-CASE.*, made by
tools/make_golden.py), the reference UNet (tools/diffref/adm_unet.py) with
every 3x3 convolution padding circularly in x, in y or in both
(adm_unet.set_tile; "both" is torch's padding_mode='circular') runs on the
case's own inputs in float64; the outputs are written as
tests/data/golden/tile-CASE-MODE.out.npy (float32).  tests/test-golden-tile.c
compares the C engine (diffuse_unet_set_tile) with them.

    /usr/bin/python3 tools/make_tile_golden.py   # from the repository root

The cases cover convolution down/upsampling (grey-cond), ResBlock up/down
with average pooling (rgba-sigma) and a non-square input (nonsquare, 16x32,
where x and y wrap differently).
"""
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from diffref.adm_unet import ADMUNet, config_from_metadata, set_tile  # noqa
from diffref.safetensors_io import load_file  # noqa

CASES = ("grey-cond", "rgba-sigma", "nonsquare")
MODES = ("x", "y", "both")


def main():
    golden = os.path.join(HERE, "..", "tests", "data", "golden")
    for case in CASES:
        base = os.path.join(golden, "forward-%s" % case)
        tensors, md = load_file(base + ".safetensors")
        cfg = config_from_metadata(md)
        model = ADMUNet(cfg)
        model.load_state_dict({k: torch.from_numpy(v)
                               for k, v in tensors.items()}, strict=True)
        model = model.double().eval()
        x = torch.from_numpy(np.load(base + ".x.npy")).double()
        t = torch.from_numpy(np.load(base + ".t.npy")).double()
        y = None
        if cfg["num_classes"] > 0:
            y = torch.from_numpy(np.load(base + ".y.npy").astype(np.int64))
        with torch.no_grad():
            plain = model(x, t, y).numpy()
            for mode in MODES:
                set_tile(model, mode)
                out = model(x, t, y).numpy()
                set_tile(model, "none")
                path = os.path.join(golden, "tile-%s-%s.out.npy" % (case, mode))
                np.save(path, out.astype(np.float32))
                # the wrap must matter, most at the edges it joins
                diff = np.abs(out - plain)
                print("tile-%-10s %-4s max |out| %.2f, max change vs zero "
                      "padding %.3f" % (case, mode, np.abs(out).max(),
                                        diff.max()))
            back = model(x, t, y).numpy()
            assert np.array_equal(back, plain), "set_tile none did not restore"
            ref = np.load(base + ".out.npy")
            err = np.abs(plain - ref).max() / max(1.0, np.abs(ref).max())
            assert err < 1e-5, "reference drifted from forward-%s" % case


if __name__ == "__main__":
    main()
