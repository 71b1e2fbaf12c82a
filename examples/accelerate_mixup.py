"""MixUp with Hugging Face accelerate: mix each batch on its device, after accelerator.prepare.

Run: python examples/accelerate_mixup.py   (CPU here; `accelerate launch` for GPUs or several processes)
"""

import torch
from accelerate import Accelerator
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import mixkit

accelerator = Accelerator()  # picks the device (the CPU here) and the process setup
torch.manual_seed(0)  # the same data and initial model on every process

# A tiny synthetic task: 1x8x8 noise images whose class (0-3) is the bright quadrant.
y = torch.randint(0, 4, (512,))
x = 0.3 * torch.randn(512, 1, 8, 8)
for c, (r, s) in enumerate([(0, 0), (0, 4), (4, 0), (4, 4)]):
    x[y == c, :, r:r + 4, s:s + 4] += 1.0
loader = DataLoader(TensorDataset(x, y), batch_size=64, shuffle=True)

model = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
                      nn.Linear(32, 4))
optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
model, optimizer, loader = accelerator.prepare(model, optimizer, loader)

mixer = mixkit.MixUp(alpha=1.0, num_classes=4)
g = torch.Generator().manual_seed(1234 + accelerator.process_index)  # each process draws its own
for epoch in range(5):
    total = 0.0
    for inputs, labels in loader:  # already on accelerator.device
        mixed, soft = mixer(inputs, labels, generator=g)
        loss = mixkit.soft_target_cross_entropy(model(mixed), soft)
        optimizer.zero_grad()
        accelerator.backward(loss)
        optimizer.step()
        total += loss.item()
    accelerator.print(f"epoch {epoch + 1}: mean mixed-batch loss {total / len(loader):.4f}")

with torch.no_grad():  # accuracy on the clean (unmixed) data
    accuracy = (model(x.to(accelerator.device)).argmax(1).cpu() == y).float().mean().item()
accelerator.print(f"final loss: {total / len(loader):.4f}, clean accuracy: {accuracy:.3f}")
