{
  description = "athena: pinned Python and uv; uv.lock owns the Python packages";

  # nixos-25.11, pinned in flake.lock. Nix provides the toolchain and nothing else (the
  # pyproject.nix "impure" pattern): `nix develop` syncs .venv from uv.lock and activates it.
  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-25.11";

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
              # manylinux wheels (numpy, torch, mlx[cpu]) dlopen system libraries.
              LD_LIBRARY_PATH = lib.makeLibraryPath pkgs.pythonManylinuxPackages.manylinux1;
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
