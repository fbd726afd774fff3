"""Applications: clients of the public library API, one subpackage (or module) each.

- :mod:`repmatch.apps.fmnist`: the Fashion-MNIST job (paper §4.1–4.2 at CPU scale): its
  encoders, flow-matching teacher, generators, recipe, task and stages (``repmatch fmnist``);
- :mod:`repmatch.apps.spiral`: the spiral diagnostic of paper Fig. 3 (``repmatch spiral``);
- :mod:`repmatch.apps.toy`: a complete iRDM run in miniature (``repmatch train --preset toy``).

Nothing in the library imports this package; the command line is its only caller.
"""
