"""FaceNet through facenet-pytorch's own InceptionResnetV1 (imported without torchvision): a randomly
initialised network's state dict, loaded through the adapter, gives the network's own outputs."""

from __future__ import annotations

import sys

import numpy as np
import torch

import _faces
from faceaudit.models.base import STATUS_OK

#: the same float32 network on the same input, two module instances
ATOL = 1e-5


def test_facenet_pytorch_state_dict_through_the_adapter_matches_the_network(tmp_path):
    from faceaudit.models.facenet import FaceNetRecognizer, InceptionResnetV1, import_facenet_pytorch

    fp = import_facenet_pytorch()
    assert fp is not None, "facenet-pytorch is not installed (make setup installs it with --no-deps)"
    assert "torchvision" not in sys.modules
    torch.manual_seed(3)
    net = fp.InceptionResnetV1(pretrained=None, classify=False)
    # random batch-norm statistics too, so the test sees them being loaded
    for m in net.modules():
        if isinstance(m, (torch.nn.BatchNorm2d, torch.nn.BatchNorm1d)):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    net.eval()
    state = dict(net.state_dict())
    state["logits.weight"] = torch.zeros(5, 512)  # the released files carry the classifier head
    state["logits.bias"] = torch.zeros(5)
    path = tmp_path / "facenet-random.pt"
    torch.save(state, path)

    model = FaceNetRecognizer(device="cpu", weights=path)
    assert model.metadata()["network_code"].startswith("facenet-pytorch")
    images = list(_faces.faces(8)[:3])
    emb, status = model.embed(images)
    assert (status == STATUS_OK).all() and emb.shape == (3, 512)
    crops, found = model.align(images)
    x = torch.from_numpy(crops).permute(0, 3, 1, 2).float()
    with torch.no_grad():
        want = net((x - 127.5) / 128.0).numpy()
        ours = InceptionResnetV1().eval()
        ours.load_state_dict({k: v for k, v in state.items() if not k.startswith("logits.")})
        fallback = ours((x - 127.5) / 128.0).numpy()
    assert np.abs(emb - want).max() < ATOL
    # faceaudit's own module (used when facenet-pytorch is absent) is the same function
    assert np.abs(fallback - want).max() < ATOL
