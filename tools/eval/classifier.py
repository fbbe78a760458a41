#!/usr/bin/python3
"""The small CNN that judges samples (class accuracy) and supplies the
feature space for FID (its 256-d penultimate layer).

Input: [B, C, 32, 32] in [-1, 1] (the diffusion models' own range; RGBA
emoji use all four channels, so a wrong alpha mask also costs accuracy
and FID).  Saved as safetensors with the architecture in __metadata__.
"""
import json
import os
import sys

import numpy as np
import torch
import torch.nn as nn

TOOLS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, TOOLS)  # the diffref package

from diffref import safetensors_io  # noqa: E402

FEATURE_DIM = 256


class SmallCNN(nn.Module):
    def __init__(self, in_channels, n_classes, width=32):
        super().__init__()
        w = width

        def block(cin, cout):
            return [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout),
                    nn.ReLU(inplace=True)]
        self.features = nn.Sequential(
            *block(in_channels, w), *block(w, w), nn.MaxPool2d(2),        # 16
            *block(w, 2 * w), *block(2 * w, 2 * w), nn.MaxPool2d(2),      # 8
            *block(2 * w, 4 * w), *block(4 * w, 4 * w), nn.MaxPool2d(2),  # 4
            nn.Flatten(),
            nn.Linear(4 * w * 16, FEATURE_DIM), nn.ReLU(inplace=True))
        self.dropout = nn.Dropout(0.3)
        self.head = nn.Linear(FEATURE_DIM, n_classes)
        self.in_channels = in_channels
        self.n_classes = n_classes
        self.width = width

    def forward(self, x, return_features=False):
        f = self.features(x)
        logits = self.head(self.dropout(f))
        return (logits, f) if return_features else logits


def save(model, path, metadata):
    md = {"in_channels": str(model.in_channels),
          "n_classes": str(model.n_classes), "width": str(model.width)}
    md.update({k: (v if isinstance(v, str) else json.dumps(v))
               for k, v in metadata.items()})
    tensors = {k: v.detach().float().numpy()
               for k, v in model.state_dict().items()
               if v.dtype.is_floating_point}
    # BatchNorm's num_batches_tracked (int) is not needed for inference.
    tmp = path + ".tmp"
    safetensors_io.save_file(tmp, tensors, md, dtype="F32")
    os.replace(tmp, path)


def load(path):
    tensors, md = safetensors_io.load_file(path)
    model = SmallCNN(int(md["in_channels"]), int(md["n_classes"]),
                     int(md["width"]))
    sd = model.state_dict()
    for k in sd:
        if k in tensors:
            sd[k] = torch.from_numpy(np.array(tensors[k]))
    model.load_state_dict(sd)
    model.eval()
    return model, md


@torch.no_grad()
def predict(model, x, batch=500):
    """x: float [N, C, H, W] in [-1, 1] -> (labels [N], features [N, 256])."""
    labels, feats = [], []
    for i in range(0, x.shape[0], batch):
        logits, f = model(torch.as_tensor(x[i:i + batch], dtype=torch.float32),
                          return_features=True)
        labels.append(logits.argmax(1))
        feats.append(f)
    return torch.cat(labels).numpy(), torch.cat(feats).double().numpy()
