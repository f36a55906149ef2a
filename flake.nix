{
  description = "athena: pinned Python and uv; uv.lock owns the Python packages";

  # nixos-26.05 (supported until 2026-12-31), pinned in flake.lock. Nix provides the toolchain
  # and nothing else (the pyproject.nix "impure" pattern): `nix develop` syncs .venv from uv.lock
  # and activates it.
  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-26.05";

  outputs =
    { nixpkgs, ... }:
    let
      inherit (nixpkgs) lib;
      systems = [
        "aarch64-darwin"
        "x86_64-linux"
        "aarch64-linux"
      ];
    in
    {
      devShells = lib.genAttrs systems (
        system:
        let
          pkgs = nixpkgs.legacyPackages.${system};
          python = pkgs.python312;
        in
        {
          default = pkgs.mkShell {
            packages = [
              python
              pkgs.uv
            ];
            env = {
              # uv uses this Python and never downloads one of its own.
              UV_PYTHON = python.interpreter;
              UV_PYTHON_DOWNLOADS = "never";
              UV_PYTHON_PREFERENCE = "only-system";
            }
            // lib.optionalAttrs pkgs.stdenv.isLinux {
              # manylinux wheels (torch, mlx[cpu], tokenizers) need libstdc++, libgcc_s and zlib.
              # No libc here: a glibc on LD_LIBRARY_PATH would be loaded by every host binary
              # the shell starts (git, the system's tools), whatever glibc they were built for.
              LD_LIBRARY_PATH = lib.makeLibraryPath [
                pkgs.stdenv.cc.cc.lib
                pkgs.zlib
              ];
            };
            shellHook = ''
              unset PYTHONPATH
              uv sync --locked
              . .venv/bin/activate
            '';
          };
        }
      );
    };
}
