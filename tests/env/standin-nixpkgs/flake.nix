# A stand-in for nixpkgs, for evaluating athena's flake.nix offline (no nixpkgs can be fetched
# on our CI machines). It has only the attributes athena's flake uses, with the same shapes:
# `lib.genAttrs`, `lib.optionalAttrs`, `lib.makeLibraryPath`, and per system `python312`, `uv`,
# `stdenv.isLinux`, `stdenv.cc.cc.lib`, `zlib`,
# `pythonManylinuxPackages.manylinux1` (glibc among them) and `mkShell`. Packages are records
# with a name; mkShell returns its arguments so the tests can read what the shell would set.
{
  outputs =
    { self }:
    let
      genAttrs = names: f: builtins.listToAttrs (map (n: { name = n; value = f n; }) names);
      lib = {
        inherit genAttrs;
        optionalAttrs = cond: attrs: if cond then attrs else { };
        makeLibraryPath = pkgs: builtins.concatStringsSep ":" (map (p: "${p.outPath}/lib") pkgs);
      };
      fakePackage = system: name: {
        inherit name system;
        outPath = "/nix/store/00000000000000000000000000000000-${name}";
        type = "derivation";
      };
      packagesFor =
        system:
        let
          pkg = fakePackage system;
        in
        {
          python312 = pkg "python3-3.12.12" // {
            interpreter = "/nix/store/00000000000000000000000000000000-python3-3.12.12/bin/python3.12";
          };
          uv = pkg "uv-0.11.16";  # nixos-26.05 branched off with uv 0.11.16
          stdenv = {
            isLinux = builtins.match ".*-linux" system != null;
            cc.cc.lib = pkg "gcc-15.2.0-lib";
          };
          zlib = pkg "zlib-1.3.1";
          pythonManylinuxPackages.manylinux1 = [
            (pkg "glibc-2.40")
            (pkg "gcc-14-lib")
            (pkg "zlib-1.3.1")
          ];
          mkShell = args: args // { standinMkShell = true; inherit system; };
        };
    in
    {
      inherit lib;
      legacyPackages = genAttrs [
        "aarch64-darwin"
        "x86_64-linux"
        "aarch64-linux"
      ] packagesFor;
    };
}
