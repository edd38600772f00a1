"""Deep linear network geometry (Menon, "The geometry of the deep linear network", arXiv 2411.09004;
Arora, Cohen, Hazan 2018; Saxe, McClelland, Ganguli 2014), computed in float64 numpy.

Modules: ``core`` (weights, energies, invariants, inits), ``operator`` (A_{N,X}, its eigenvalues,
PSD fractional powers), ``flow`` (gradient flow, gradient descent, end-to-end ODE), ``entropy``,
``langevin``. The five DLN experiments that measure these are phenomena
(``losslab.phenomena.dln_runs`` for their numerics, ``losslab.phenomena.dln_experiments`` for
their figures, checks and ``save_result``): phenomena depend on dln, never the reverse.
"""
from .core import (DLN, ENERGIES, INITS, Energy, Frobenius, LpRegression, Regression, as_weights, balanced_factorization,
                   balancedness, end_to_end, get_energy, invariants, model_from_weights, random_init, saxe_init,
                   weight_gradients, weights_from_model, whiten, whitened_data)
from .entropy import entropy, entropy_by_gram, free_energy, gram_logdet, orbit_generators
from .flow import (MatrixTrajectory, WeightTrajectory, end_to_end_flow, gradient_descent, gradient_flow,
                   saxe_curve, saxe_learning_time, scalar_flow_closed_form)
from .langevin import (diffusion, langevin_scalar, noisy_gradient_descent, quadratic, stationary_bin_probabilities,
                       stationary_density, tv_noise_floor)
from .operator import (end_to_end_operator, end_to_end_velocity, layerwise_velocity, operator_eigenvalues,
                       operator_matrix, psd_power)

__all__ = [
    "DLN", "ENERGIES", "INITS", "Energy", "Frobenius", "LpRegression", "Regression", "as_weights",
    "balanced_factorization", "balancedness", "end_to_end", "get_energy", "invariants", "model_from_weights",
    "random_init", "saxe_init", "weight_gradients", "weights_from_model", "whiten",
    "entropy", "entropy_by_gram", "free_energy", "gram_logdet", "orbit_generators",
    "whitened_data", "saxe_curve", "saxe_learning_time", "tv_noise_floor",
    "MatrixTrajectory", "WeightTrajectory", "end_to_end_flow", "gradient_descent", "gradient_flow",
    "scalar_flow_closed_form",
    "diffusion", "langevin_scalar", "noisy_gradient_descent", "quadratic", "stationary_bin_probabilities",
    "stationary_density",
    "end_to_end_operator", "end_to_end_velocity", "layerwise_velocity", "operator_eigenvalues", "operator_matrix",
    "psd_power",
]
