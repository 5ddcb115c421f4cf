"""Networks in and out of spikeroll.

nir      export a SpikingNet to a NIR graph (the Neuromorphic Intermediate Representation, read by
         neuromorphic chips' toolchains and other simulators) and read NIR graphs back.
readers  recipes that run an exported graph in another simulator (snnTorch), filling in the node
         mappings its importer lacks.

Both need the optional `nir` package (`pip install 'spikeroll[nir]'`), imported only when used.
"""
