# The CTest fixture gen_test_data (tests/CMakeLists.txt), run as
#   cmake -DDAGUERRE=<daguerre binary> -DDATA=<tests/data> -DOUT=<build>/test-data -P gen_test_data.cmake
# Writes into OUT the test data that `daguerre gen-model` reproduces tensor for tensor
# (the tiny model, seed 1234, f32) instead of storing it in the repository:
#   sd15-tiny/sd15-tiny.safetensors  LDM single file, no __metadata__ (configs from the shapes)
#   sd15-tiny/diffusers/             the diffusers folder: gen-model's three weight files, then
#                                    every stored file of DATA/sd15-tiny/diffusers (model_index,
#                                    scheduler, config.json files, tokenizer) copied over it, so
#                                    the folder is the reference fixture, complete in one place.
# tests/test_gen_model.sh checks the weights against DATA/sd15-tiny/diffusers-weights.sha256
# (per-tensor hashes of the reference files that used to be stored).
foreach(v DAGUERRE DATA OUT)
  if(NOT DEFINED ${v})
    message(FATAL_ERROR "gen_test_data.cmake: -D${v}=... is required")
  endif()
endforeach()

set(dir ${OUT}/sd15-tiny)
file(REMOVE_RECURSE ${dir})
file(MAKE_DIRECTORY ${dir})
set(tiny gen-model --arch sd15 --size tiny --dtype f32 --seed 1234)

execute_process(COMMAND ${DAGUERRE} ${tiny} --layout single --metadata none -o ${dir}/sd15-tiny.safetensors
                RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "gen-model (single file) failed: ${rc}")
endif()

execute_process(COMMAND ${DAGUERRE} ${tiny} --layout diffusers --tokenizer ${DATA}/sd15-tiny/diffusers/tokenizer
                        -o ${dir}/diffusers
                RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "gen-model (diffusers folder) failed: ${rc}")
endif()
# the stored configs and tokenizer replace gen-model's own (the reference files, byte for byte)
file(COPY ${DATA}/sd15-tiny/diffusers/ DESTINATION ${dir}/diffusers NO_SOURCE_PERMISSIONS)
foreach(f unet/diffusion_pytorch_model vae/diffusion_pytorch_model text_encoder/model)
  if(NOT EXISTS ${dir}/diffusers/${f}.safetensors)
    message(FATAL_ERROR "gen-model wrote no ${dir}/diffusers/${f}.safetensors")
  endif()
endforeach()
message(STATUS "test data written to ${dir}")
