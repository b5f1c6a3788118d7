"""Rank program: one DDP step (torch default group from the communicator), then a Lightning fit."""

import sys

import numpy as np
import torch

import deeprc.comm as dc

backend = sys.argv[1]
comm = dc.init(backend, timeout=60)
torch.manual_seed(0)
model = torch.nn.Linear(4, 1)
dc.init_torch_process_group(comm, "gloo")
ddp = torch.nn.parallel.DistributedDataParallel(model)
g = torch.Generator().manual_seed(100 + comm.rank)  # different data on each rank
x, y = torch.randn(16, 4, generator=g), torch.randn(16, 1, generator=g)
opt = torch.optim.SGD(ddp.parameters(), lr=0.1)
before = torch.cat([p.detach().flatten() for p in model.parameters()]).clone()
loss = torch.nn.functional.mse_loss(ddp(x), y)
loss.backward()
opt.step()
after = torch.cat([p.detach().flatten() for p in model.parameters()]).numpy()
weights = comm.allgather(after)
assert not np.allclose(before.numpy(), after), "the step did not change the weights"
assert all(np.array_equal(weights[0], w) for w in weights), f"DDP weights differ: {weights}"
print(f"rank {comm.rank}: DDP weights identical on {comm.size} ranks", flush=True)
torch.distributed.destroy_process_group()

# Lightning DDP with DeepRC's cluster environment (no torchrun)
import pytorch_lightning as pl  # noqa: E402


class Tiny(pl.LightningModule):
    def __init__(self):
        super().__init__()
        torch.manual_seed(1)
        self.lin = torch.nn.Linear(4, 1)

    def training_step(self, batch, _):
        xb, yb = batch
        return torch.nn.functional.mse_loss(self.lin(xb), yb)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


data = torch.utils.data.TensorDataset(x, y)
env = dc.DeepRCEnvironment(comm)
trainer = pl.Trainer(
    accelerator="cpu", strategy="ddp", devices=comm.local_size, num_nodes=comm.num_nodes, plugins=[env],
    max_epochs=2, logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
)
module = Tiny()
trainer.fit(module, torch.utils.data.DataLoader(data, batch_size=8))
assert trainer.world_size == comm.size, trainer.world_size
w = torch.cat([p.detach().flatten() for p in module.parameters()]).numpy()
ws = comm.allgather(w)
assert all(np.array_equal(ws[0], v) for v in ws), f"Lightning weights differ: {ws}"
print(f"rank {comm.rank}: Lightning world {trainer.world_size}, weights identical", flush=True)
