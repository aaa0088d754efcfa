"""The doctor reports every component and says how to fix what is missing."""

from __future__ import annotations

from synthvis import doctor


def test_doctor_passes_on_a_set_up_machine(capsys):
    assert doctor.main([]) == 0
    report = capsys.readouterr().out
    for name in ("python", "packages", "version pins", "torch", "MuJoCo rendering", "procgen"):
        assert name in report
    assert "MUJOCO_GL=" in report and "frames/s" in report and "synthvis is ready" in report


def test_doctor_names_the_fix_for_a_failing_check(monkeypatch, capsys):
    def broken_procgen() -> doctor.Check:
        raise ImportError("libGL.so.1: cannot open shared object file")

    monkeypatch.setattr(doctor, "CHECKS", (doctor.check_python, broken_procgen))
    assert doctor.main([]) == 1
    report = capsys.readouterr().out
    assert "FAIL" in report and "libGL.so.1" in report and "fix:" in report
