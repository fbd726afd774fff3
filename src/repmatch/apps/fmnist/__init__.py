"""The Fashion-MNIST application (paper §4.1–4.2 at CPU scale), a client of the library.

- :mod:`.encoders`: the in-project encoders ``fmnist_classifier``/``fmnist_autoencoder``
  (registered through the ``repmatch.encoders`` entry point) and their training;
- :mod:`.unet`, :mod:`.flow_matching`, :mod:`.teacher`: the class-conditional velocity U-Net
  and its rectified-flow teacher training;
- :mod:`.conv_generator`: the from-scratch one-step generator;
- :mod:`.recipe`, :mod:`.parts`, :mod:`.task`, :mod:`.pipeline`, :mod:`.stages`: the job
  (``repmatch fmnist``): recipe, run layout, the iRDM task object and the stages;
- :mod:`.seeds`: the job's one-step arms over several seeds (``repmatch fmnist --seeds``).
"""
