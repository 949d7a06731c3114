"""Prints CMake set() commands describing the torch this interpreter imports (python/CMakeLists.txt)."""
import torch
import torch.utils.cpp_extension as ext


def cmake_list(items):
    return ";".join(str(i).replace("\\", "/") for i in items)


print(f'set(KAIZEN_TORCH_INCLUDE_DIRS "{cmake_list(ext.include_paths())}")')
print(f'set(KAIZEN_TORCH_LIBRARY_DIR "{cmake_list(ext.library_paths())}")')
print(f"set(KAIZEN_TORCH_CXX11_ABI {int(torch._C._GLIBCXX_USE_CXX11_ABI)})")
print(f'set(KAIZEN_TORCH_VERSION "{torch.__version__}")')
