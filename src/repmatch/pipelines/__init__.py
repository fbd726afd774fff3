"""End-to-end jobs, one module per job.

- :mod:`repmatch.pipelines.fmnist`: Fashion-MNIST, one-step generation and iRDM post-training
  of a few-step teacher (paper §4.1–4.2), verb ``repmatch fmnist``.
"""
