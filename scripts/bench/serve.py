"""Baseline for bench:serve: the classifier behind HTTP as a PyTorch user writes it with the standard library.

usage: serve.py RUN PORT THREADS
RUN: a fine-tuned run folder of mmssl (model.safetensors: torchvision's AlexNet keys under s1./s2., classifier.bn.*,
classifier.fc.*; its metadata holds the band statistics). A ThreadingHTTPServer answers POST /v1/classify with
{"inputs": {modality: {"data": [...], "shape": [bands, H, W]}}}: standardise, the model in eval mode under
torch.inference_mode(), softmax, JSON. Prints "ready" once listening.
"""
import json
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "test", "fixtures"))
from safetensors_lite import load_file, read_metadata  # noqa: E402

from baselines import AlexNetFeatures  # noqa: E402

run, port, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
torch.set_num_threads(threads)
weights = os.path.join(run, "model.safetensors")
meta = json.loads(read_metadata(weights)["mmssl"])
stats = json.loads(meta["normalizationPerModality"])
classes = meta["classNames"]
CHANNELS = {"s1": 2, "s2": 4}


class Classifier(torch.nn.Module):
    def __init__(self):
        super().__init__()
        for m, c in CHANNELS.items():
            self.add_module(m, AlexNetFeatures(c))
        self.classifier = torch.nn.Module()
        self.classifier.bn = torch.nn.BatchNorm1d(4096 * len(CHANNELS), affine=False)
        self.classifier.fc = torch.nn.Linear(4096 * len(CHANNELS), len(classes))

    def forward(self, inputs):
        features = torch.cat([getattr(self, m)(inputs[m]) for m in CHANNELS], 1)
        return self.classifier.fc(self.classifier.bn(features))


model = Classifier()
model.load_state_dict(load_file(weights), strict=True)
model.eval()
mean = {m: torch.tensor(stats[m]["mean"]).view(-1, 1, 1) for m in CHANNELS}
std = {m: torch.tensor(stats[m]["std"]).view(-1, 1, 1) for m in CHANNELS}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        inputs = {}
        for m in CHANNELS:
            x = body["inputs"][m]
            inputs[m] = ((torch.tensor(x["data"], dtype=torch.float32).view(x["shape"]) - mean[m]) / std[m]).unsqueeze(0)
        with torch.inference_mode():
            p = torch.softmax(model(inputs), 1)[0].tolist()
        out = json.dumps({"label": classes[max(range(len(p)), key=p.__getitem__)], "probabilities": dict(zip(classes, p))}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)


server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
print("ready", flush=True)
server.serve_forever()
