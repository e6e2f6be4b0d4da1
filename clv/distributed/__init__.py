"""Past one machine: features, training, scoring and segmentation on a Dask cluster.

The single-machine path stays the default; this package is used only when a Dask scheduler is
given (``--dask-address`` or ``CLV_DASK_ADDRESS``) and gives the same results. Dask is imported
lazily, inside the functions, so ``import clv`` stays light.
"""
