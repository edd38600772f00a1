"""Deep linear network geometry (Menon, "The geometry of the deep linear network", arXiv 2411.09004;
Arora, Cohen, Hazan 2018; Saxe, McClelland, Ganguli 2014), computed in float64 numpy.

Modules: ``core`` (weights, energies, invariants, inits), ``operator`` (A_{N,X}, its eigenvalues,
PSD fractional powers), ``flow`` (gradient flow, gradient descent, end-to-end ODE), ``entropy``,
``langevin``, ``experiments`` (the five experiments and ``save_result``).
"""
from .core import (DLN, ENERGIES, INITS, Energy, Frobenius, LpRegression, Regression, as_weights, balanced_factorization,
                   balancedness, end_to_end, get_energy, invariants, model_from_weights, random_init, saxe_init,
                   weight_gradients, weights_from_model, whiten)
from .entropy import entropy, entropy_by_gram, free_energy, gram_logdet, orbit_generators
from .experiments import (EXPERIMENTS, ConservationResult, DepthResult, EndToEndResult, LangevinResult, SaxeResult,
                          conservation, depth, end_to_end_experiment, langevin, run_experiment, save_result, saxe,
                          saxe_curve, saxe_learning_time)
from .flow import (MatrixTrajectory, WeightTrajectory, end_to_end_flow, gradient_descent, gradient_flow,
                   scalar_flow_closed_form)
from .langevin import (diffusion, langevin_scalar, noisy_gradient_descent, quadratic, stationary_bin_probabilities,
                       stationary_density)
from .operator import (end_to_end_operator, end_to_end_velocity, layerwise_velocity, operator_eigenvalues,
                       operator_matrix, psd_power)

__all__ = [
    "DLN", "ENERGIES", "INITS", "Energy", "Frobenius", "LpRegression", "Regression", "as_weights",
    "balanced_factorization", "balancedness", "end_to_end", "get_energy", "invariants", "model_from_weights",
    "random_init", "saxe_init", "weight_gradients", "weights_from_model", "whiten",
    "entropy", "entropy_by_gram", "free_energy", "gram_logdet", "orbit_generators",
    "EXPERIMENTS", "ConservationResult", "DepthResult", "EndToEndResult", "LangevinResult", "SaxeResult",
    "conservation", "depth", "end_to_end_experiment", "langevin", "run_experiment", "save_result", "saxe",
    "saxe_curve", "saxe_learning_time",
    "MatrixTrajectory", "WeightTrajectory", "end_to_end_flow", "gradient_descent", "gradient_flow",
    "scalar_flow_closed_form",
    "diffusion", "langevin_scalar", "noisy_gradient_descent", "quadratic", "stationary_bin_probabilities",
    "stationary_density",
    "end_to_end_operator", "end_to_end_velocity", "layerwise_velocity", "operator_eigenvalues", "operator_matrix",
    "psd_power",
]
