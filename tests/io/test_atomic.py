import os

import pytest

from napari_bloodseg.io.atomic import atomic_path, atomic_write


def test_write_success_leaves_only_target(tmp_path):
    target = tmp_path / "sub" / "dir" / "out.txt"  # parents are created
    assert atomic_write(target, lambda tmp: tmp.write_text("hello")) == target
    assert target.read_text() == "hello"
    assert [p.name for p in target.parent.iterdir()] == ["out.txt"]


def test_temp_file_is_beside_target_until_done(tmp_path):
    target = tmp_path / "m.png"
    with atomic_path(target) as tmp:
        assert tmp.parent == tmp_path and tmp != target  # same folder: os.replace is atomic there
        tmp.write_bytes(b"x")
        assert not target.exists()  # nothing visible under the final name before success
    assert target.read_bytes() == b"x"


def test_failure_leaves_no_temp_file_and_no_target(tmp_path):
    target = tmp_path / "out.png"

    def fail(tmp):
        tmp.write_bytes(b"half a mask")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(target, fail)
    assert list(tmp_path.iterdir()) == []


def test_failure_keeps_the_previous_file(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")

    def fail(tmp):
        tmp.write_text("new but broken")
        raise KeyboardInterrupt  # a cancel mid-write

    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, fail, overwrite=True)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_never_silently_overwrites(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("precious")
    called = []
    with pytest.raises(FileExistsError, match=r"out\.txt exists; pass overwrite=True"):
        atomic_write(target, called.append)
    assert called == []  # refused before anything was written
    assert target.read_text() == "precious"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_overwrite_when_asked(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    atomic_write(target, lambda tmp: tmp.write_text("new"), overwrite=True)
    assert target.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_check_can_write_in_refuses_a_file_on_the_way_and_accepts_missing_folders(tmp_path):
    from napari_bloodseg.io.atomic import check_can_write_in

    check_can_write_in(tmp_path / "new" / "deeper")  # made later, by the writer
    assert not (tmp_path / "new").exists()
    (tmp_path / "afile").write_text("x")
    with pytest.raises(NotADirectoryError, match="is a file, not a folder"):
        check_can_write_in(tmp_path / "afile" / "sub")


def test_check_can_write_in_names_a_read_only_file_system(tmp_path, monkeypatch):
    """A read-only mount was reported as "no permission to write in X"."""
    import errno
    import types

    from napari_bloodseg.io import atomic

    monkeypatch.setattr(atomic.os, "access", lambda path, mode: False)
    with pytest.raises(PermissionError, match="no permission to write in"):
        atomic.check_can_write_in(tmp_path)
    monkeypatch.setattr(atomic.os, "statvfs", lambda path: types.SimpleNamespace(f_flag=os.ST_RDONLY), raising=False)
    with pytest.raises(OSError, match=f"{tmp_path} is on a read-only file system$") as caught:
        atomic.check_can_write_in(tmp_path / "sub")
    assert caught.value.errno == errno.EROFS and not isinstance(caught.value, PermissionError)


def test_files_written_by_replacing_the_temporary_keep_normal_permissions(tmp_path):
    """safetensors replaces the file it is given: model weights came out 0600, unreadable to colleagues."""
    import os

    def replace_it(tmp):
        fresh = tmp.with_name("fresh")
        fresh.write_bytes(b"w")
        os.chmod(fresh, 0o600)
        os.replace(fresh, tmp)

    umask = os.umask(0o022)
    try:
        atomic_write(tmp_path / "m.safetensors", replace_it)
    finally:
        os.umask(umask)
    assert (tmp_path / "m.safetensors").stat().st_mode & 0o777 == 0o644


def test_a_group_is_written_all_or_nothing(tmp_path):
    """A model is weights + card: a failure writing the second (a full disk) must leave both old files."""
    import errno

    from napari_bloodseg.io.atomic import atomic_write_group

    weights, card = tmp_path / "m.safetensors", tmp_path / "m.json"
    weights.write_text("old weights")
    card.write_text("old card")

    def full(tmp):
        tmp.write_text("half")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OSError, match="No space"):
        atomic_write_group([(weights, lambda t: t.write_text("new weights")), (card, full)], overwrite=True)
    assert (weights.read_text(), card.read_text()) == ("old weights", "old card")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json", "m.safetensors"]  # no temporary left
    with pytest.raises(KeyboardInterrupt):  # Ctrl-C while the card is being written: the same
        atomic_write_group([(weights, lambda t: t.write_text("new")), (card, _interrupt)], overwrite=True)
    assert (weights.read_text(), card.read_text()) == ("old weights", "old card")

    atomic_write_group(
        [(weights, lambda t: t.write_text("new weights")), (card, lambda t: t.write_text("new card"))],
        overwrite=True,
        moves=[],
        remove=[],
    )
    assert (weights.read_text(), card.read_text()) == ("new weights", "new card")


def _interrupt(tmp):
    raise KeyboardInterrupt


def test_interrupts_wait_until_the_renames_are_done():
    """Ctrl-C or kill from outside: the kernel may hand the signal to any thread that does not block it (numpy,
    torch and Qt have threads), so only a signal sent by another process shows whether the renames are safe."""
    import signal
    import subprocess
    import time

    from napari_bloodseg.io.atomic import signals_held

    # Python's own Ctrl-C handler, whatever earlier tests (napari, Qt) left installed
    outer = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        done = []
        with pytest.raises(KeyboardInterrupt):
            with signals_held():
                subprocess.run(["kill", "-INT", str(os.getpid())], check=True)
                end = time.monotonic() + 0.5
                while time.monotonic() < end:  # the signal has arrived by now; a real rename would run here
                    pass
                done.append("renamed")  # still runs: the interrupt is held back
        assert done == ["renamed"]
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # put back
    finally:
        if outer is not None:
            signal.signal(signal.SIGINT, outer)


@pytest.mark.parametrize("links", [True, False], ids=["hard-links", "no-hard-links"])
def test_a_group_never_replaces_files_another_program_created_meanwhile(tmp_path, monkeypatch, links):
    """Two fine-tunes saving one name both passed the 'exists?' check; the later rename replaced the first model."""
    import os

    from napari_bloodseg.io.atomic import atomic_write_group

    if not links:
        monkeypatch.setattr(os, "link", lambda *a: (_ for _ in ()).throw(PermissionError("no hard links")))
    weights, card = tmp_path / "m.safetensors", tmp_path / "m.json"

    def card_while_the_other_saves(tmp):
        tmp.write_text("mine")
        card.write_text("theirs")  # the other program's whole save lands between our check and our renames

    with pytest.raises(FileExistsError, match="created by another program meanwhile"):
        atomic_write_group([(weights, lambda t: t.write_text("mine")), (card, card_while_the_other_saves)])
    assert card.read_text() == "theirs" and not weights.exists()  # ours taken back: no weights beside their card
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json"]  # no temporary file left
