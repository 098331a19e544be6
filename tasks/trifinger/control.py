"""The impedance controller that turns desired fingertip positions into joint torques (eai-vc's)."""

from __future__ import annotations

import numpy as np

KP, KV, MAX_POSITION_ERROR = 300.0, 5.0, 0.01  # impedance controller (eai-vc ImpedanceController defaults)


class ImpedanceController:
    """Joint torques that track desired fingertip positions and velocities (eai-vc ImpedanceController).

    tau = J^T (Kv (dx_des - J dq) + Kp clip(x_des - x)) + g(q), the position error capped at 1 cm per
    finger, J the tips' linear Jacobians (LOCAL_WORLD_ALIGNED) and g pinocchio's RNEA at zero velocity.
    """

    def __init__(self, kinematics):
        import pinocchio

        self._pin = pinocchio
        self.model = kinematics.robot_model
        self.data = kinematics.robot_model.createData()
        self.tips = list(kinematics.tip_link_ids)

    def fingertips(self, q: np.ndarray) -> np.ndarray:
        """Fingertip positions [9] (m) for joint positions q."""
        self._pin.framesForwardKinematics(self.model, self.data, q)
        return np.concatenate([self.data.oMf[f].translation for f in self.tips])

    def jacobian(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(fingertip positions [9], stacked linear Jacobians [9, 9]) at q."""
        pin = self._pin
        pin.computeJointJacobians(self.model, self.data, q)
        pin.framesForwardKinematics(self.model, self.data, q)
        frame = pin.ReferenceFrame.LOCAL_WORLD_ALIGNED
        jac = np.concatenate([pin.getFrameJacobian(self.model, self.data, f, frame)[:3] for f in self.tips])
        return np.concatenate([self.data.oMf[f].translation for f in self.tips]), jac

    def torque(self, x_des: np.ndarray, dx_des: np.ndarray, q: np.ndarray, dq: np.ndarray) -> np.ndarray:
        x, jac = self.jacobian(q)
        error = (x_des - x).reshape(3, 3)
        norms = np.linalg.norm(error, axis=1, keepdims=True)
        error = np.where(norms > MAX_POSITION_ERROR, error / np.maximum(norms, 1e-12) * MAX_POSITION_ERROR, error)
        force = KV * (dx_des - jac @ dq) + KP * error.reshape(9)
        gravity = self._pin.rnea(self.model, self.data, q, np.zeros_like(q), np.zeros_like(q))
        return jac.T @ force + gravity
